"""Piccolo's configuration: the engine from DATABASE_URL and every domain's app."""

from piccolo.conf.apps import AppRegistry

from app.db import make_engine
from app.settings import get_settings

DB = make_engine(get_settings())

APP_REGISTRY = AppRegistry(
    apps=[
        "app.piccolo_app",
        "kyc.piccolo_app",
        "video.piccolo_app",
        "credit.piccolo_app",
        "claims.piccolo_app",
    ]
)
