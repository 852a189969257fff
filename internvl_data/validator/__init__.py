"""`ivl-data validate`: the driver (:mod:`.driver`), the block worker (:mod:`.worker`), options, cache, manifest and the reporters."""
