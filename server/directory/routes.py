"""Directory endpoints. Each route: parse (schema) -> one service call -> serialise."""
from __future__ import annotations

import uuid
from typing import Any

from flask.views import MethodView

from server.api import BEARER, Blueprint
from server.auth.policy import Permission, current_principal, requires
from server.directory import enrolment, service
from server.directory import schemas as s
from server.schemas import PageQuery


def _blueprint(name: str, prefix: str, description: str) -> Blueprint:
    blp = Blueprint(name, __name__, url_prefix=f"/api/v1/{prefix}", description=description)
    return blp


departments = _blueprint("departments", "departments", "Enforcement departments (执法单位)")
check_items = _blueprint("check_items", "check-items", "Check items per department with their legal basis (检查事项)")
enterprises = _blueprint("enterprises", "enterprises",
                         "Cross-department directory of inspection targets (检查对象名录库)")
users = _blueprint("users", "users", "People: inspectors, supervisors, reviewers, heads")
certificates = _blueprint("certificates", "certificates",
                          "Enforcement certificates (行政执法证) and their status history")
devices = _blueprint("devices", "devices", "Bodycams, tablets and docking stations")

blueprints = [departments, check_items, enterprises, users, certificates, devices]

_AUTH_ERRORS = ((401, "Not authenticated"), (403, "Role not allowed"), (422, "Invalid input"))


def _documented(blp: Blueprint, *, item: bool = False) -> Any:
    def decorate(fn: Any) -> Any:
        fn = blp.doc(security=BEARER)(fn)
        for status, text in _AUTH_ERRORS:
            fn = blp.alt_response(status, description=text)(fn)
        if item:
            fn = blp.alt_response(404, description="Not found or outside your department")(fn)
        return fn
    return decorate


@departments.route("/")
class Departments(MethodView):
    @requires(Permission.READ_DIRECTORY)
    @_documented(departments)
    @departments.arguments(PageQuery, location="query")
    @departments.response(200, s.DepartmentPage)
    def get(self, query: dict[str, Any]) -> Any:
        """List departments"""
        return service.list_departments(current_principal(), query["limit"], query["after"])

    @requires(Permission.MANAGE_DEPARTMENTS)
    @_documented(departments)
    @departments.arguments(s.DepartmentCreate)
    @departments.response(201, s.DepartmentSchema)
    @departments.alt_response(409, description="Code already used")
    def post(self, body: dict[str, Any]) -> Any:
        """Create a department (admin)"""
        return service.create_department(current_principal(), body["code"], body["name"])


@departments.route("/<uuid:department_id>")
class DepartmentItem(MethodView):
    @requires(Permission.READ_DIRECTORY)
    @_documented(departments, item=True)
    @departments.response(200, s.DepartmentSchema)
    def get(self, department_id: uuid.UUID) -> Any:
        """Get a department"""
        return service.get_department(current_principal(), department_id)


@check_items.route("/")
class CheckItems(MethodView):
    @requires(Permission.READ_DIRECTORY)
    @_documented(check_items)
    @check_items.arguments(s.CheckItemQuery, location="query")
    @check_items.response(200, s.CheckItemPage)
    def get(self, query: dict[str, Any]) -> Any:
        """List check items"""
        return service.list_check_items(current_principal(), query["department_id"], query["limit"], query["after"])

    @requires(Permission.MANAGE_CHECK_ITEMS)
    @_documented(check_items)
    @check_items.arguments(s.CheckItemCreate)
    @check_items.response(201, s.CheckItemSchema)
    @check_items.alt_response(409, description="Code already used in the department")
    def post(self, body: dict[str, Any]) -> Any:
        """Create a check item in your department"""
        return service.create_check_item(current_principal(), body)


@check_items.route("/<uuid:item_id>")
class CheckItemItem(MethodView):
    @requires(Permission.READ_DIRECTORY)
    @_documented(check_items, item=True)
    @check_items.response(200, s.CheckItemSchema)
    def get(self, item_id: uuid.UUID) -> Any:
        """Get a check item"""
        return service.get_check_item(current_principal(), item_id)

    @requires(Permission.MANAGE_CHECK_ITEMS)
    @_documented(check_items, item=True)
    @check_items.arguments(s.CheckItemUpdate)
    @check_items.response(200, s.CheckItemSchema)
    def patch(self, body: dict[str, Any], item_id: uuid.UUID) -> Any:
        """Change a check item of your department"""
        return service.update_check_item(current_principal(), item_id, body)


@enterprises.route("/")
class Enterprises(MethodView):
    @requires(Permission.READ_DIRECTORY)
    @_documented(enterprises)
    @enterprises.arguments(s.EnterpriseQuery, location="query")
    @enterprises.response(200, s.EnterprisePage)
    def get(self, query: dict[str, Any]) -> Any:
        """Search the directory of inspection targets"""
        return service.list_enterprises(current_principal(), query["q"], query["department_id"], query["limit"],
                                        query["after"])

    @requires(Permission.MANAGE_ENTERPRISES)
    @_documented(enterprises)
    @enterprises.arguments(s.EnterpriseCreate)
    @enterprises.response(201, s.EnterpriseSchema)
    @enterprises.alt_response(409, description="Credit code already in the directory")
    def post(self, body: dict[str, Any]) -> Any:
        """Add an enterprise, supervised by your department"""
        return service.create_enterprise(current_principal(), body)


@enterprises.route("/<uuid:enterprise_id>")
class EnterpriseItem(MethodView):
    @requires(Permission.READ_DIRECTORY)
    @_documented(enterprises, item=True)
    @enterprises.response(200, s.EnterpriseSchema)
    def get(self, enterprise_id: uuid.UUID) -> Any:
        """Get an enterprise"""
        return service.get_enterprise(current_principal(), enterprise_id)

    @requires(Permission.MANAGE_ENTERPRISES)
    @_documented(enterprises, item=True)
    @enterprises.arguments(s.EnterpriseUpdate)
    @enterprises.response(200, s.EnterpriseSchema)
    def patch(self, body: dict[str, Any], enterprise_id: uuid.UUID) -> Any:
        """Change an enterprise your department supervises"""
        return service.update_enterprise(current_principal(), enterprise_id, body)


@users.route("/")
class Users(MethodView):
    @requires(Permission.READ_PEOPLE)
    @_documented(users)
    @users.arguments(s.UserQuery, location="query")
    @users.response(200, s.UserPage)
    def get(self, query: dict[str, Any]) -> Any:
        """List people of your department"""
        return service.list_users(current_principal(), query["role"], query["limit"], query["after"],
                                  query["department_id"])

    @requires(Permission.MANAGE_PEOPLE)
    @_documented(users)
    @users.arguments(s.UserCreate)
    @users.response(201, s.UserSchema)
    @users.alt_response(409, description="Username or certificate number already used")
    def post(self, body: dict[str, Any]) -> Any:
        """Create an account (optionally with its enforcement certificate)"""
        return service.create_user(current_principal(), body)


@users.route("/<uuid:user_id>")
class UserItem(MethodView):
    @requires(Permission.READ_PEOPLE)
    @_documented(users, item=True)
    @users.response(200, s.UserSchema)
    def get(self, user_id: uuid.UUID) -> Any:
        """Get a person"""
        return service.get_user(current_principal(), user_id)


@certificates.route("/")
class Certificates(MethodView):
    @requires(Permission.READ_PEOPLE)
    @_documented(certificates)
    @certificates.arguments(PageQuery, location="query")
    @certificates.response(200, s.CertificatePage)
    def get(self, query: dict[str, Any]) -> Any:
        """List certificates of your department"""
        return service.list_certificates(current_principal(), query["limit"], query["after"])


@certificates.route("/<uuid:certificate_id>")
class CertificateItem(MethodView):
    @requires(Permission.READ_PEOPLE)
    @_documented(certificates, item=True)
    @certificates.response(200, s.CertificateSchema)
    def get(self, certificate_id: uuid.UUID) -> Any:
        """Get a certificate with its status history"""
        return service.get_certificate(current_principal(), certificate_id)


@certificates.route("/<uuid:certificate_id>/status")
class CertificateStatus(MethodView):
    @requires(Permission.CHANGE_CERTIFICATE_STATUS)
    @_documented(certificates, item=True)
    @certificates.arguments(s.CertificateStatusRequest)
    @certificates.response(200, s.CertificateSchema)
    @certificates.alt_response(409, description="Already in that status, or revoked")
    def post(self, body: dict[str, Any], certificate_id: uuid.UUID) -> Any:
        """Suspend (暂扣), revoke (吊销) or reinstate a certificate"""
        principal = current_principal()
        certificate = service.get_certificate(principal, certificate_id)
        return service.change_certificate_status(principal, certificate, body["status"], body.get("reason"))


@devices.route("/")
class Devices(MethodView):
    @requires(Permission.READ_DEVICES)
    @_documented(devices)
    @devices.arguments(PageQuery, location="query")
    @devices.response(200, s.DevicePage)
    def get(self, query: dict[str, Any]) -> Any:
        """List devices of your department"""
        return service.list_devices(current_principal(), query["limit"], query["after"])

    @requires(Permission.MANAGE_DEVICES)
    @_documented(devices)
    @devices.arguments(s.DeviceCreate)
    @devices.response(201, s.DeviceCreated)
    @devices.alt_response(409, description="Device id already registered")
    def post(self, body: dict[str, Any]) -> Any:
        """Register a device; the answer carries its secret, shown once"""
        return service.create_device(current_principal(), body)


@devices.route("/<string:device_id>")
class DeviceItem(MethodView):
    @requires(Permission.READ_DEVICES)
    @_documented(devices, item=True)
    @devices.response(200, s.DeviceSchema)
    def get(self, device_id: str) -> Any:
        """Get a device"""
        return service.get_device(current_principal(), device_id)


# POST /enrol (no log-in) is server.provenance.routes: the tablet sends its signing key with it.


@devices.post("/<string:device_id>/retire")
@requires(Permission.MANAGE_DEVICES)
@_documented(devices, item=True)
@devices.response(200, s.DeviceSchema)
def retire(device_id: str) -> Any:
    """Retire a device for good: its secret and every token bound to it stop working at once"""
    return enrolment.retire(current_principal(), device_id)
