# One image for every vroegsignaal service; each container runs `vroegsignaal serve <name>`.
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
COPY vroegsignaal ./vroegsignaal
RUN pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /app vroegsignaal
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY config ./config
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VS_PARTNERS_FILE=/app/config/partners.yaml \
    VS_HTTP_HOST=0.0.0.0
USER 10001
ENTRYPOINT ["vroegsignaal"]
CMD ["--help"]
