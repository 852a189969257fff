"""The data formats: pydantic models (the source of the JSON Schemas), meta loading, JSON parsing and line splitting."""
