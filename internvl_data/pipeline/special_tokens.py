"""The special tokens InternVL2 adds to every tokenizer (no imports: templates, tokenizer and validate use them)."""

IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
# The 9 InternVL special tokens in the order the official trainer adds them (docs/official-behaviour.md §1.9).
INTERNVL_TOKENS = (IMG_START, IMG_END, IMG_CONTEXT, "<quad>", "</quad>", "<ref>", "</ref>", "<box>", "</box>")
