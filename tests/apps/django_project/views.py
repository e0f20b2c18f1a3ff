"""Views: a CSRF-protected form, a file upload that reports size and hash, a raw body report."""

from __future__ import annotations

import hashlib

from django.http import HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.views.decorators.csrf import csrf_exempt


def index(request):
    return HttpResponse("hello", content_type="text/plain")


def form(request):
    if request.method == "POST":
        return HttpResponse(f"hello {request.POST['name']}", content_type="text/plain")
    token = get_token(request)
    return HttpResponse(
        '<form method="post">'
        f'<input type="hidden" name="csrfmiddlewaretoken" value="{token}">'
        '<input name="name"><button>Send</button></form>'
    )


@csrf_exempt
def upload(request):
    uploaded = request.FILES["file"]
    digest = hashlib.sha256()
    for chunk in uploaded.chunks():
        digest.update(chunk)
    return JsonResponse({
        "name": uploaded.name,
        "size": uploaded.size,
        "sha256": digest.hexdigest(),
        "note": request.POST.get("note"),
        "content_length": request.META.get("CONTENT_LENGTH", "<absent>"),
    })


@csrf_exempt
def body(request):
    data = request.body  # Django trusts CONTENT_LENGTH: --buffer-body makes it exact
    return JsonResponse({
        "length": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "content_length": request.META.get("CONTENT_LENGTH", "<absent>"),
    })
