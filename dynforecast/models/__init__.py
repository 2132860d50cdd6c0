"""Forecasting models behind one interface (`ForecastModel`) and a registry of names."""

from dynforecast.models.base import ForecastModel, create_model, model_from_config, model_names
from dynforecast.models.batch import WindowBatch

__all__ = ["ForecastModel", "WindowBatch", "create_model", "model_from_config", "model_names"]
