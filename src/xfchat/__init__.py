"""XFChat: a self-hosted real-time chat server on PostgreSQL."""

__version__ = "0.1.0"
