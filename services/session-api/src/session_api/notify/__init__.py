"""Notifications: people told, by e-mail, chat or webhook (apprise), when a run needs them.

``notices`` turns projected events into notices, ``outbox`` coalesces and rate-limits them per
destination, ``sender`` delivers one message with apprise, ``urls`` keeps the URLs secret,
``service`` runs it all beside the projector without ever blocking it.
"""
