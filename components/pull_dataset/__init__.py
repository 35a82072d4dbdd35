from components.pull_dataset.component import pull_dataset

__all__ = ["pull_dataset"]
