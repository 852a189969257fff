"""The data contract: the rule catalogue (:mod:`.catalogue`), findings, and one module per rule family (IVL0xx lines, IVL1xx meta, IVL2xx records, IVL3xx media, IVL4xx tokens)."""
