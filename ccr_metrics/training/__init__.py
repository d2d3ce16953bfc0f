"""The training path: the 1-to-K contrastive loss and hard-sample mining.

Imports the core and :mod:`ccr_metrics.distributed` (to gather features across
processes). The public objects are re-exported from :mod:`ccr_metrics`.
"""
