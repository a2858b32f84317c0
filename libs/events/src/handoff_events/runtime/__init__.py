"""The runtime every service shares: settings, logging, metrics, HTTP edge, publisher, app."""
