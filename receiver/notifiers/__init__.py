"""Chat and file notifiers, all behind :class:`receiver.notifiers.base.Notifier`."""
