from components.train_noa.component import train_noa

__all__ = ["train_noa"]
