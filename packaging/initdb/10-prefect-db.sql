-- Prefect's own database, beside tgp's run database (docker-compose.yml).
CREATE DATABASE prefect;
