"""SCIM 2.0 endpoints (RFC 7644): parse, call ``provisioning``, render. Token-authenticated, so CSRF-exempt (no
cookie is read); every answer, errors included, is ``application/scim+json`` in SCIM's shape, never a traceback."""

import functools
import json
import logging

import pydantic
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from scim2_models import (
    Context,
    Error,
    InvalidSyntaxException,
    InvalidValueException,
    NotFoundException,
    PayloadTooLargeException,
    ResponseParameters,
    SCIMException,
    SearchRequest,
)

from identity.web import client_ip

from ..scim_clients import Refusal, client_for_token
from . import provisioning, resources
from .resources import UserResource

logger = logging.getLogger(__name__)
CONTENT_TYPE = "application/scim+json"


def _answer(data: dict | None, status: int = 200) -> HttpResponse:
    if data is None:
        return HttpResponse(status=status, content_type=CONTENT_TYPE)
    return JsonResponse(data, status=status, content_type=CONTENT_TYPE)


def _error(status: int, detail: str, scim_type: str | None = None) -> HttpResponse:
    error = Error(status=status, scim_type=scim_type, detail=detail)
    return _answer(error.model_dump(scim_ctx=Context.DEFAULT), status=status)


def _from_validation(error: pydantic.ValidationError) -> HttpResponse:
    found = Error.from_validation_errors(error)[0]
    return _error(found.status or 400, found.detail or "Invalid request.", found.scim_type)


def scim_endpoint(*methods: str):
    """Bearer token (DIR-05), the allowed methods (405 otherwise), body size, JSON body, and every failure answered
    in SCIM's shape."""
    return functools.partial(_scim_endpoint, methods=frozenset(methods))


def _scim_endpoint(view, *, methods: frozenset[str]):
    @csrf_exempt
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            scheme, _, token = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
            ip = client_ip(request)
            client = client_for_token(token.strip() if scheme.lower() == "bearer" else "", ip=ip)
            if isinstance(client, Refusal):
                response = _error(client.status, client.detail)
                if client.status == 401:
                    response["WWW-Authenticate"] = 'Bearer realm="SCIM"'
                return response
            if request.method not in methods:
                return _error(405, f"{request.method} is not supported here.")
            body = None
            if request.method in ("POST", "PUT", "PATCH"):
                try:
                    length = int(request.META.get("CONTENT_LENGTH") or 0)
                except ValueError as error:
                    raise InvalidSyntaxException(detail="Content-Length is not a number.") from error
                if length > settings.SCIM_MAX_BODY_BYTES:
                    raise PayloadTooLargeException(
                        detail=f"Bodies are limited to {settings.SCIM_MAX_BODY_BYTES} bytes."
                    )
                try:
                    body = json.loads(request.body or b"null")
                except (ValueError, UnicodeDecodeError) as error:
                    raise InvalidSyntaxException(detail="The body is not JSON.") from error
                if not isinstance(body, dict):
                    raise InvalidSyntaxException(detail="The body is not a JSON object.")
            # PostgreSQL stores no NUL character; refused here rather than failing the query.
            if "\x00" in request.path or any("\x00" in value for value in request.GET.values()):
                raise InvalidValueException(detail="The request holds a NUL character.")
            if body is not None and "\\u0000" in json.dumps(body):
                raise InvalidValueException(detail="The body holds a NUL character.")
            return view(request, *args, client=client, ip=ip, body=body, **kwargs)
        except SCIMException as error:
            found = error.to_error()
            return _error(found.status or 400, found.detail or str(error), found.scim_type)
        except pydantic.ValidationError as error:
            return _from_validation(error)
        except ValidationError as error:
            return _error(400, " ".join(error.messages), "invalidValue")
        except Exception:
            logger.exception("SCIM request failed: %s %s", request.method, request.path)
            return _error(500, "The request could not be handled.")

    return wrapped


def _page(request) -> tuple[int, int]:
    try:
        start = max(1, int(request.GET.get("startIndex") or 1))
        count = min(resources.MAX_RESULTS, max(0, int(request.GET.get("count") or resources.MAX_RESULTS)))
    except ValueError as error:
        raise InvalidValueException(detail="startIndex and count are integers.") from error
    return start, count


def _parameters(request) -> ResponseParameters:
    return ResponseParameters.model_validate(
        {key: request.GET[key] for key in ("attributes", "excludedAttributes") if key in request.GET}
    )


def _dump(resource, request, context=Context.RESOURCE_QUERY_RESPONSE) -> dict:
    return resource.model_dump(scim_ctx=context, response_parameters=_parameters(request))


def _people_page(text: str | None, start: int, count: int, parameters: ResponseParameters) -> HttpResponse:
    found = resources.people_matching(text)
    page = [resources.user_resource(user) for user in found[start - 1 : start - 1 + count]]
    return _answer(resources.list_response(page, total=found.count(), start_index=start, parameters=parameters))


@scim_endpoint("GET", "POST")
def users(request, *, client, ip, body):
    if request.method == "GET":
        start, count = _page(request)
        return _people_page(request.GET.get("filter"), start, count, _parameters(request))
    resource = UserResource.model_validate(body, scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    user = provisioning.create_user(resource, client=client, ip=ip)
    response = _answer(_dump(resources.user_resource(user), request, Context.RESOURCE_CREATION_RESPONSE), 201)
    response["Location"] = f"{resources.base_url()}/Users/{user.directory_id}"
    return response


@scim_endpoint("POST")
def users_search(request, *, client, ip, body):
    """POST /Users/.search (RFC 7644 §3.4.3): the query of a GET, in a body (a filter too long for a URL)."""
    search = SearchRequest.model_validate(body, scim_ctx=Context.SEARCH_REQUEST)
    start = max(1, search.start_index or 1)
    count = min(resources.MAX_RESULTS, max(0, resources.MAX_RESULTS if search.count is None else search.count))
    parameters = ResponseParameters.model_validate(
        {key: body[key] for key in ("attributes", "excludedAttributes") if key in body}
    )
    return _people_page(str(search.filter) if search.filter else None, start, count, parameters)


@scim_endpoint("GET", "PUT", "PATCH", "DELETE")
def user(request, scim_id: str, *, client, ip, body):
    person = provisioning.person(scim_id)
    if request.method == "GET":
        return _answer(_dump(resources.user_resource(person), request))
    if request.method == "PUT":
        resource = UserResource.model_validate(body, scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
        person = provisioning.replace_user(person, resource, client=client, ip=ip)
    elif request.method == "PATCH":
        person = provisioning.patch_user(person, body, client=client, ip=ip)
    elif request.method == "DELETE":
        provisioning.deactivate_user(person, client=client, ip=ip)
        return _answer(None, 204)
    return _answer(_dump(resources.user_resource(person), request, Context.RESOURCE_REPLACEMENT_RESPONSE))


@scim_endpoint("GET", "POST")
def groups(request, *, client, ip, body):
    if request.method == "GET":
        start, count = _page(request)
        found = resources.groups_matching(request.GET.get("filter"))
        wanted = [resources.GROUPS_BY_ID[group.id] for group in found[start - 1 : start - 1 + count]]
        page = [resources.group_resource(group) for group in wanted]
        return _answer(
            resources.list_response(page, total=len(found), start_index=start, parameters=_parameters(request))
        )
    # The groups exist here already: a directory pushing one of them is matched by its name.
    group = resources.group_by_name(str(body.get("displayName") or ""))
    if group is None:
        names = ", ".join(f'"{group.display_name}"' for group in resources.GROUPS)
        raise InvalidValueException(detail=f"Only these groups exist here: {names}.")
    provisioning.set_group_members(group, provisioning.member_ids(body), client=client, ip=ip)
    return _answer(_dump(resources.group_resource(group), request, Context.RESOURCE_CREATION_RESPONSE), 201)


@scim_endpoint("GET", "PUT", "PATCH", "DELETE")
def group(request, group_id: str, *, client, ip, body):
    found = resources.GROUPS_BY_ID.get(group_id)
    if found is None:
        raise NotFoundException(detail=f"No group {group_id}.")
    if request.method == "PATCH":
        provisioning.patch_group(found, body, client=client, ip=ip)
        return _answer(None, 204)
    if request.method == "PUT":
        provisioning.set_group_members(found, provisioning.member_ids(body), client=client, ip=ip)
    elif request.method == "DELETE":
        raise InvalidValueException(detail="The groups here cannot be deleted; remove their members instead.")
    return _answer(_dump(resources.group_resource(found), request))


@scim_endpoint("GET")
def service_provider_config(request, **kwargs):
    return _answer(resources.service_provider_config().model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


def _discovery(items, request, name: str | None, what: str) -> HttpResponse:
    if name is None:
        return _answer(resources.list_response(items, total=len(items), start_index=1))
    found = next((item for item in items if str(item.id).lower() == name.lower()), None)
    if found is None:
        raise NotFoundException(detail=f"No {what} {name}.")
    return _answer(found.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE))


@scim_endpoint("GET")
def resource_types(request, name: str | None = None, **kwargs):
    return _discovery(resources.resource_types(), request, name, "resource type")


@scim_endpoint("GET")
def schemas(request, name: str | None = None, **kwargs):
    return _discovery(resources.schemas(), request, name, "schema")


@csrf_exempt
def not_found(request, rest: str = ""):
    return _error(404, "No such SCIM endpoint.")
