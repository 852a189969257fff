"""The training recipe of `ivl-train run`: config -> data gate -> model -> data -> HF Trainer -> save."""
