from components.record_outcome.component import record_outcome

__all__ = ["record_outcome"]
