from django.urls import path

from tests.apps.django_project import views

urlpatterns = [
    path("", views.index),
    path("form", views.form),
    path("upload", views.upload),
    path("body", views.body),
]
