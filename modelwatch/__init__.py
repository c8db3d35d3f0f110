"""modelwatch: self-hosted model monitoring and governance as Prefect flows over a local or S3 store."""

__version__ = "0.1.0"
