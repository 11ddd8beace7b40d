"""Notifiers, one module per channel type, all behind :class:`receiver.notifiers.base.Notifier`.

``slack`` (Block Kit), ``discord`` (embeds), ``telegram`` (Bot API sendMessage, HTML),
``pagerduty`` (Events API v2), ``line`` (Messaging API push), ``webhook`` (generic JSON),
``apprise_urls`` (any Apprise URL) and ``jsonl`` (file). ``common`` holds the text layout the
text-only targets share, ``options`` what every type's configuration has in common, ``metrics``
the send metrics (attempts and delivery outcomes, one label order). Instances and routes are
configured in :mod:`receiver.routing`, whose registry ``NOTIFIERS`` maps each ``type`` to its
class.

Routing-file fields per type (``*`` = a secret, given as ``<field>_env: VAR`` or
``<field>_file: PATH``, exactly one of the two; never inline):

===========  =========================================================================
slack        ``webhook_url*``, ``bot_token*``, ``channel``, ``api_url``
discord      ``webhook_url*``
telegram     ``bot_token*``, ``chat_id`` (number or ``@channel``), ``message_thread_id``,
             ``api_url`` (default ``https://api.telegram.org``)
pagerduty    ``routing_key*``, ``source``, ``api_url`` (default the US enqueue URL)
line         ``channel_access_token*``, ``to`` (``U``/``C``/``R`` + 32 hex), ``api_url``
webhook      ``url*``, ``headers`` (plain values; secret-looking names refused),
             ``headers_env``/``headers_file`` (name → VAR / PATH), ``timeout_seconds``
apprise      ``urls*`` (Apprise URLs separated by spaces, commas or newlines)
jsonl        ``path``
===========  =========================================================================

Adding a notifier
-----------------

One new module, one registry line, its tests. For a hypothetical ``type: ntfy``:

1. ``receiver/notifiers/ntfy.py``: an options model and the notifier class::

       class NtfyOptions(NotifierOptions):           # everything that is not a secret
           topic: str
           api_url: HttpUrlOption = "https://ntfy.sh"   # an absolute http(s) URL

       class NtfyNotifier(Notifier):
           channel = "ntfy"                         # the routing ``type`` and metric label
           options = NtfyOptions
           secret_fields = ("token",)               # token_env: VAR or token_file: PATH
           secret_format = "token"                  # or "url"; or override check_secret
           min_send_interval = 0.2                  # the platform's pace, if it has one

           @classmethod
           def from_config(cls, config: NotifierConfig, client: httpx.AsyncClient) -> NtfyNotifier:
               o = config.typed(NtfyOptions)
               return cls(config.secrets["token"], o.topic, client, name=config.name)

           async def _send(self, notification: Notification) -> None:
               body = render_ntfy(notification)     # a pure function: test it on its own
               resp = await post_json(self._client, self._url, body, channel=self.name, ...)
               raise_for_status(resp, channel=self.name, retry_after=parse_retry_after_header(
                   resp.headers.get("Retry-After")), secrets=[self._token.get_secret_value()])

   A type configured by one secret ``webhook_url`` subclasses
   :class:`~receiver.notifiers.base.WebhookUrlNotifier` instead and needs only ``channel``,
   ``options`` and ``_send`` (see ``slack`` and ``discord``). Render untrusted text through
   :mod:`receiver.text` (``fit``, ``neutralise_text``, …) and raise only
   :class:`~receiver.notifiers.base.NotifyError` and its subclasses, whose messages hold no
   secrets. Override the optional capabilities when the target has them: ``idempotency_key``
   (a key the target deduplicates on; see ``line`` and ``webhook``) and ``delivered_before``
   (whether a send interrupted by a crash arrived; see ``jsonl``). The worker calls them
   through the interface, and ``send`` records the send metrics.
2. ``receiver/routing.py``: one line in ``NOTIFIERS``: ``"ntfy": NtfyNotifier,``.
3. Tests: rendering and error mapping against a mocked HTTP server (``respx``), as in
   ``tests/receiver/notifiers/test_notifiers.py``, and a routing-file entry in
   ``tests/receiver/test_receiver_routing.py``. List the type in the table above and in
   ``README.md``.
"""
