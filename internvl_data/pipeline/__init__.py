"""From a record to model inputs exactly as the official trainer builds them: templates, labels, tokenizer, tiling, transforms, video, sample, mixture, collate, render."""
