"""The pure core: rank counts, ranks, recall, MRV, consistency and cascade ranks.

Nothing here reads a file, prints, or touches ``torch.distributed``; it imports only
itself. The public objects are re-exported from :mod:`ccr_metrics`.
"""
