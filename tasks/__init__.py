"""The units of work: plain functions returning pydantic documents, plus thin Prefect task wrappers."""
