"""Settings for the tiny Django project the end-to-end tests run under ``--buffer-body``.

No database, no templates directory: just CSRF protection and three views.
"""

SECRET_KEY = "e2e-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.apps.django_project.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.csrf.CsrfViewMiddleware"]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
# Uploads above this go to a temporary file (Django's default is 2.5 MiB).
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
