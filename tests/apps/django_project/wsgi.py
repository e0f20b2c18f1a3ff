"""``tests.apps.django_project.wsgi:application``: Django's own WSGI handler, wrapped in wsgiref.validate."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.django_project.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402  (settings must be named first)

from tests.apps._validate import validated  # noqa: E402

application = validated(get_wsgi_application())
