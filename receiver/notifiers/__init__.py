"""Notifiers, one module per target, all behind :class:`receiver.notifiers.base.Notifier`.

``slack`` (Block Kit), ``discord`` (embeds), ``telegram`` (Bot API sendMessage, HTML),
``pagerduty`` (Events API v2), ``line`` (Messaging API push), ``webhook`` (generic JSON),
``apprise_urls`` (any Apprise URL) and ``jsonl`` (file). ``common`` holds the text layout the
text-only targets share, ``metrics`` the per-notifier request metrics. Instances and routes are
configured in :mod:`receiver.routing`.
"""
