-- Run once by the postgres image on an empty volume: one database per store. The Dagster
-- instance uses the image's POSTGRES_DB (dagster); the owner is the image's POSTGRES_USER.
CREATE DATABASE audit;
CREATE DATABASE mlflow;
