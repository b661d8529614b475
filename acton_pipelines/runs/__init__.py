"""What every asset's run shares: partitions, the window a launch means, the asset groups,
failures in one line and the CLI's progress logger.

The layer below the domains (``crm``, ``contacts``, ...) and above ``warehouse``: it imports no
domain, so any domain's assets may use it.
"""
