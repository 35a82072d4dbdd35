from components.reject.component import reject

__all__ = ["reject"]
