"""``tests.apps.django_project.wsgi:application``: Django's own WSGI handler, wrapped in wsgiref.validate."""

import os

# The settings module is named before Django is imported.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.apps.django_project.settings")

from django.core.wsgi import get_wsgi_application

from tests.apps._validate import validated

application = validated(get_wsgi_application())
