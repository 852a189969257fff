"""`ivl-train plan`: per-GPU memory and time of a fine-tune, from config.json alone (issue 12).

cards.py (the seven released sizes), shapes.py (parameter shapes from config.json via the meta device),
states.py (weights, gradients, optimizer states under DDP / ZeRO-1/2/3 / offload / LoRA).
"""
