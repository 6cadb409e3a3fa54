# One image for the console, the worker and the API; pick with the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.txt pyproject.toml ./
RUN pip install -r requirements.txt
COPY core ./core
COPY dashboard ./dashboard
COPY pages ./pages
COPY .streamlit ./.streamlit
RUN pip install --no-deps -e . && useradd --create-home --uid 10001 agentops && mkdir -p var && chown agentops var
USER agentops
EXPOSE 8501 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status == 200 else 1)"
# Migrations run before the console starts. Worker: `python -m core worker`; API: `python -m core api --host 0.0.0.0`.
CMD ["sh", "-c", "python -m core db setup && exec streamlit run dashboard/app.py --server.address 0.0.0.0 --server.port 8501"]
