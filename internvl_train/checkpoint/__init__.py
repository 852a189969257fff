"""InternVL2 checkpoints on transformers 5: load (:mod:`.loading`), save (:mod:`.saving`), shards, key maps, families and config maps."""
