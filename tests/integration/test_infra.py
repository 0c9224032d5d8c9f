"""The deployment templates (infra/) against the code and against Checkov.

The Bicep CLI cannot run here, so these tests read the templates with pycep-parser (the parser
Checkov uses for Bicep) and check what the code relies on:
- every .bicep file parses (Checkov silently skips a file it cannot parse);
- Checkov's Bicep checks pass, and every skip says why and is still needed;
- the app settings are exactly the registry's (shared/settings.py) non-local settings plus the
  few the platform reads itself; values with a registry default keep that default;
- the containers, queues and tables are exactly those in exports/names.py;
- storage, Key Vault and Application Insights are reached with the managed identity only, with
  the roles the app needs and no more;
- the failed-run alert matches the log line the app writes.
The registry and exports/names.py are the single sources: nothing here repeats their lists.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from exports import names
from exports.model import RunStatus
from exports.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN = INFRA / "main.bicep"
PARAMETERS = INFRA / "main.parameters.json"
LOCAL_SETTINGS_SAMPLE = ROOT / "local.settings.sample.json"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# App settings the template may set besides the registry's: settings the Functions host reads
# itself, not the app's code. Flex Consumption needs no others: runtime, deployment storage and
# scale live in the site's functionAppConfig, and FUNCTIONS_WORKER_RUNTIME,
# FUNCTIONS_EXTENSION_VERSION, WEBSITE_RUN_FROM_PACKAGE, WEBSITE_CONTENT* are not allowed there.
PLATFORM_SETTINGS = {
    "APPLICATIONINSIGHTS_CONNECTION_STRING",  # where the host sends logs and metrics
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",  # Entra authentication with the managed identity
}

# Blob containers only the infrastructure uses: the Flex Consumption deployment package.
INFRA_ONLY_CONTAINERS = {"app-package"}

# Names the platform provides to every app: code may read them without a registry entry.
PLATFORM_PROVIDED_PREFIXES = ("WEBSITE_", "FUNCTIONS_", "AZURE_FUNCTIONS_", "APPSETTING_")

# Least privilege: the built-in roles the app's identity gets, and on what.
ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts"),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts"),
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": ("Key Vault Secrets Officer", "Microsoft.KeyVault/vaults"),
    "3913510d-42f4-4e42-8a64-420c390055eb": ("Monitoring Metrics Publisher", "Microsoft.Insights/components"),
}

REQUIRED_OUTPUTS = {"functionAppName", "functionAppHostName", "storageAccountName", "keyVaultUri"}

NON_LOCAL = [s for s in SETTINGS if s.where != "local"]
LOCAL = [s for s in SETTINGS if s.where == "local"]
REGISTRY_NAMES = {s.name for s in SETTINGS}


# --------------------------------------------------------------------------------------------
# Parsing


def _parse(path: Path) -> dict:
    from pycep import BicepParser

    return BicepParser().parse(file_path=path)


@pytest.fixture(scope="module")
def templates() -> dict[str, dict]:
    """Every .bicep file under infra/, parsed; keyed by its path relative to infra/."""
    parsed = {}
    for path in BICEP_FILES:
        try:
            parsed[path.relative_to(INFRA).as_posix()] = _parse(path)
        except Exception as error:  # noqa: BLE001 - reported by test_bicep_file_parses
            pytest.fail(f"{path.relative_to(ROOT)} does not parse with pycep-parser: {error}")
    return parsed


@pytest.fixture(scope="module")
def main(templates) -> dict:
    return templates["main.bicep"]


def _module_template(templates: dict, main: dict, module_name: str) -> dict:
    module = main["modules"][module_name]
    assert module["type"] == "local", f"module {module_name} must be a local file (registry modules cannot be read offline)"
    return templates[module["detail"]["path"]]


def _resources(templates: dict, resource_type: str) -> list[tuple[str, str, dict]]:
    """(file, symbolic name, resource) of every resource of `resource_type`, existing ones excluded."""
    found = []
    for file, template in templates.items():
        for symbol, resource in template.get("resources", {}).items():
            if resource["type"] == resource_type and not resource["existing"]:
                found.append((file, symbol, resource))
    return found


def _body(resource: dict) -> dict:
    """A resource's properties, whether it is plain, conditional (`if`) or a loop (`for`)."""
    config = resource["config"]
    while "config" in config and ("condition" in config or "loop_type" in config):
        config = config["config"]
    return config


def _accessor_path(value) -> str | None:
    """'a.b.c' for a property access such as identity.outputs.clientId, else None."""
    if not isinstance(value, dict) or "operator" not in value or value["operator"]["type"] != "property_accessor":
        return None
    operands = value["operator"]["operands"]
    rest = operands["operand_2"]
    tail = rest if isinstance(rest, str) else _accessor_path(rest)
    return None if tail is None else f"{operands['operand_1']}.{tail}"


def _function(value, name: str) -> dict | None:
    if isinstance(value, dict) and "function" in value and value["function"]["type"] == name:
        return value["function"]["parameters"]
    return None


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(INFRA).as_posix())
def test_bicep_file_parses(path):
    """Checkov skips a file pycep cannot parse without a word: every file must parse.

    pycep-parser cannot read some valid Bicep (see ../shared/DESIGN.md): function arguments over
    several lines, long runs of comment lines inside an object, lambdas, spread, nullable types,
    func/import, loops on nested child resources, registry modules.
    """
    try:
        parsed = _parse(path)
    except Exception as error:  # noqa: BLE001 - lark raises several types
        pytest.fail(f"{path.relative_to(ROOT)} does not parse with pycep-parser (Checkov would skip it): {error}")
    assert parsed.get("resources") or parsed.get("modules"), f"{path.name} declares no resource or module"


def test_main_uses_only_local_modules(main, templates):
    assert BICEP_FILES and MAIN in BICEP_FILES, "infra/main.bicep is missing"
    for name, module in main["modules"].items():
        assert module["type"] == "local", f"module {name}: only local modules (registry modules cannot be scanned offline)"
        assert module["detail"]["path"] in templates, f"module {name}: {module['detail']['path']} not found under infra/"


# --------------------------------------------------------------------------------------------
# Checkov


def _checkov(directory: Path) -> dict:
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE")  # offline: no guideline download
    env.pop("BC_API_KEY", None)
    command = [sys.executable, "-m", "checkov.main", "-d", str(directory), "--framework", "bicep",
               "-o", "json", "--skip-download"]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"checkov gave no JSON report (exit {result.returncode}):\n{result.stderr[-3000:]}") from None
    reports = report if isinstance(report, list) else [report]
    bicep = [r for r in reports if r.get("check_type") == "bicep"]
    assert bicep, f"checkov found nothing to scan in {directory}: {reports}"
    return bicep[0]


@pytest.fixture(scope="module")
def checkov_reports(tmp_path_factory) -> tuple[dict, dict]:
    """Checkov on infra/, and on a copy without the skip comments (to show each skip is needed)."""
    unsuppressed = tmp_path_factory.mktemp("infra-unsuppressed") / "infra"
    shutil.copytree(INFRA, unsuppressed)
    for path in unsuppressed.rglob("*.bicep"):
        lines = path.read_text().splitlines(keepends=True)
        path.write_text("".join(line for line in lines if "checkov:skip=" not in line))
    with ThreadPoolExecutor(max_workers=2) as pool:
        real, bare = pool.map(_checkov, (INFRA, unsuppressed))
    return real, bare


def _key(check: dict) -> tuple[str, str, str]:
    return check["check_id"], check["resource"], check["file_path"]


def test_checkov_scanned_the_templates(checkov_reports):
    """Checkov reads Bicep with pycep too: with every file parsing (above), it scans every file."""
    report, _ = checkov_reports
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    assert report["summary"]["resource_count"] > 0, report["summary"]
    assert report["summary"]["passed"] > 0, report["summary"]


def test_checkov_finds_no_failed_check(checkov_reports):
    report, _ = checkov_reports
    failed = report["results"].get("failed_checks", [])
    assert not failed, "checkov failed checks (fix them, or add `//checkov:skip=CKV_...: reason` in the resource):\n" + "\n".join(
        f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range']} {c['check_name']}" for c in failed)


def test_checkov_skips_say_why(checkov_reports):
    report, _ = checkov_reports
    for check in report["results"].get("skipped_checks", []):
        reason = (check.get("check_result") or {}).get("suppress_comment", "").strip()
        assert len(reason) >= 20, f"skip of {check['check_id']} on {check['resource']} needs a written reason, got {reason!r}"


def test_checkov_skips_are_all_needed(checkov_reports):
    """A skip for a check that would pass hides nothing and misleads readers: remove it."""
    report, bare = checkov_reports
    skipped = {_key(c) for c in report["results"].get("skipped_checks", [])}
    would_fail = {_key(c) for c in bare["results"].get("failed_checks", [])}
    assert skipped <= would_fail, f"skips of checks that pass anyway: {sorted(skipped - would_fail)}"


# --------------------------------------------------------------------------------------------
# App settings


@pytest.fixture(scope="module")
def app_settings(main) -> dict:
    """The one object main.bicep passes to the function app as its complete app settings."""
    assert "appSettings" in main["variables"], "main.bicep must build every app setting in `var appSettings`"
    return main["variables"]["appSettings"]["value"]


def test_app_settings_are_set_in_one_place(templates, main):
    """The settings object is the only source: no appsettings config resource, no literal list."""
    module = main["modules"]["functionApp"]
    assert module["config"]["params"]["appSettings"] == "appSettings"
    app = _module_template(templates, main, "functionApp")
    sites = [r for r in app["resources"].values() if r["type"] == "Microsoft.Web/sites"]
    assert len(sites) == 1
    listed = _body(sites[0])["properties"]["siteConfig"]["appSettings"]
    assert listed["loop_type"]["detail"] == {"item_name": "setting", "object_name": "appSettings"}, listed
    for file, symbol, resource in _resources(templates, "Microsoft.Web/sites/config"):
        assert _body(resource)["name"] != "appsettings", f"{file}: {symbol} sets app settings outside main.bicep's appSettings"


def test_template_sets_every_registry_setting(app_settings):
    missing = [s.name for s in NON_LOCAL if s.name not in app_settings]
    assert not missing, (f"registry settings (shared/settings.py, where azure/everywhere) missing from infra/main.bicep "
                         f"appSettings: {missing}; add each, from a parameter defaulting to the registry's default")


def test_template_sets_no_setting_the_code_does_not_read(app_settings):
    registered = {s.name for s in NON_LOCAL}
    local = {s.name for s in LOCAL}
    assert not local & set(app_settings), f"local-only settings must not be set on Azure: {sorted(local & set(app_settings))}"
    unknown = set(app_settings) - registered - PLATFORM_SETTINGS
    assert not unknown, f"app settings nobody reads (neither in shared/settings.py nor platform settings): {sorted(unknown)}"


def _resolve(value, main: dict):
    """(kind, detail) of a setting value: ('param', name), ('literal', text) or ('expression', None)."""
    converted = _function(value, "string")
    if converted is not None:
        value = converted["value_to_convert"]
    if isinstance(value, str):
        if value in main.get("parameters", {}):
            return "param", value
        if value in main.get("variables", {}) or "${" in value:
            return "expression", None
        return "literal", value
    if isinstance(value, (bool, int)):
        return "literal", value
    return "expression", None


def _as_setting(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_settings_with_a_default_keep_the_registry_default(main, app_settings):
    parameters_file = json.loads(PARAMETERS.read_text())["parameters"]
    checked = 0
    for setting in NON_LOCAL:
        if setting.default is None or setting.name not in app_settings:
            continue
        kind, detail = _resolve(app_settings[setting.name], main)
        if kind == "literal":
            assert _as_setting(detail) == setting.default, f"{setting.name}: template sets {detail!r}, registry default {setting.default!r}"
        elif kind == "param":
            default = main["parameters"][detail]["default"]
            assert _as_setting(default) == setting.default, (
                f"{setting.name}: parameter {detail} defaults to {default!r}, registry default {setting.default!r}")
            if detail in parameters_file:
                value = parameters_file[detail]["value"]
                assert _as_setting(value) == setting.default, (
                    f"{setting.name}: main.parameters.json sets {detail}={value!r}, registry default {setting.default!r}")
        checked += 1
    assert checked, "no registry setting with a default was checked"


def test_identity_based_storage_and_identity_settings(app_settings, main):
    assert app_settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert _accessor_path(app_settings["AzureWebJobsStorage__clientId"]) == "identity.outputs.clientId"
    assert _accessor_path(app_settings["AZURE_CLIENT_ID"]) == "identity.outputs.clientId"
    for kind in ("blob", "queue", "table"):
        assert _accessor_path(app_settings[f"AzureWebJobsStorage__{kind}ServiceUri"]) == f"storage.outputs.{kind}Endpoint"
    assert _accessor_path(app_settings["KEY_VAULT_URL"]) == "keyVault.outputs.uri"
    assert "AzureWebJobsStorage" not in app_settings, "no storage connection string on Azure"
    assert app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identity.outputs.clientId};Authorization=AAD"


def test_sign_in_switch_follows_the_auth_parameter(app_settings, main, templates):
    switch = app_settings["EXPORT_REQUIRE_SIGN_IN"]["operator"]
    assert switch["type"] == "conditional"
    assert _function(switch["operands"]["condition"], "empty") == {"item_to_test": "authClientId"}
    assert (switch["operands"]["true_value"], switch["operands"]["false_value"]) == ("false", "true")
    assert main["parameters"]["authClientId"]["default"] == ""
    app = _module_template(templates, main, "functionApp")
    auth = [r for r in app["resources"].values() if r["type"] == "Microsoft.Web/sites/config"
            and _body(r)["name"] == "authsettingsV2"]
    assert len(auth) == 1, "App Service Authentication (authsettingsV2) is missing"
    condition = auth[0]["config"]["condition"]["operator"]
    assert condition["type"] == "not" and _function(condition["operands"]["bool_value"], "empty") == {"item_to_test": "authClientId"}
    assert _body(auth[0])["properties"]["globalValidation"]["requireAuthentication"] is True


def test_code_reads_only_registry_settings():
    """Settings read straight from the environment must be in the registry too."""
    pattern = re.compile(r"""(?:environ\.get|environ|getenv)\s*[\[(]\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""")
    sources = [ROOT / "function_app.py", *sorted((ROOT / "exports").rglob("*.py")), *sorted((ROOT / "shared").rglob("*.py"))]
    unregistered = {}
    for path in sources:
        if path.exists():
            for name in pattern.findall(path.read_text()):
                if name not in REGISTRY_NAMES and not name.startswith(PLATFORM_PROVIDED_PREFIXES):
                    unregistered.setdefault(name, []).append(path.relative_to(ROOT).as_posix())
    assert not unregistered, f"settings read by the code but missing from shared/settings.py SETTINGS: {unregistered}"


def test_registry_places_are_known():
    assert {s.where for s in SETTINGS} <= {"local", "azure", "everywhere"}


def test_local_settings_sample_has_every_registry_setting():
    if not LOCAL_SETTINGS_SAMPLE.exists():
        pytest.skip("local.settings.sample.json is not written yet (the lead writes it from shared/settings.py)")
    values = json.loads(LOCAL_SETTINGS_SAMPLE.read_text()).get("Values", {})
    missing = [s.name for s in SETTINGS if s.name not in values]
    assert not missing, f"local.settings.sample.json Values lacks registry settings: {missing}"


# --------------------------------------------------------------------------------------------
# Storage names


def _literal_list(main: dict, variable: str) -> list[str]:
    assert variable in main["variables"], f"main.bicep must list the names in `var {variable}`"
    value = main["variables"][variable]["value"]
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), f"var {variable} must be a list of names"
    assert len(value) == len(set(value)), f"var {variable} repeats a name"
    return value


@pytest.mark.parametrize("variable, parameter, resource_type, expected", [
    ("blobContainers", "containerNames", "Microsoft.Storage/storageAccounts/blobServices/containers", names.CONTAINERS),
    ("storageQueues", "queueNames", "Microsoft.Storage/storageAccounts/queueServices/queues", names.QUEUES),
    ("storageTables", "tableNames", "Microsoft.Storage/storageAccounts/tableServices/tables", names.TABLES),
])
def test_storage_names_are_those_of_the_code(templates, main, variable, parameter, resource_type, expected):
    declared = _literal_list(main, variable)
    assert set(declared) == set(expected), (f"var {variable} in main.bicep {sorted(declared)} differs from exports/names.py "
                                            f"{sorted(expected)}")
    assert main["modules"]["storage"]["config"]["params"][parameter] == variable
    storage = _module_template(templates, main, "storage")
    created = _resources(templates, resource_type)
    looped = [(f, s) for f, s, r in created if r["config"].get("loop_type", {}).get("detail", {}).get("array_name") == parameter]
    assert len(looped) == 1 and templates[looped[0][0]] is storage, f"storage.bicep must create one {resource_type} per {parameter}"
    others = [(f, s, _body(r)["name"]) for f, s, r in created if (f, s) not in looped]
    if variable == "blobContainers":
        assert main["variables"]["deploymentContainer"]["value"] in INFRA_ONLY_CONTAINERS
        assert [name for _, _, name in others] == ["deploymentContainerName"], others
        assert main["modules"]["storage"]["config"]["params"]["deploymentContainerName"] == "deploymentContainer"
    else:
        assert not others, f"{resource_type} the app does not name: {others}"


def test_poison_queues_are_created():
    # The app reads them to close runs whose chunks failed; the host would create them only on first use.
    for queue in (names.SEGMENTS_QUEUE, names.CHUNKS_QUEUE):
        assert queue + names.POISON_SUFFIX in names.QUEUES


# --------------------------------------------------------------------------------------------
# No keys, least privilege


def test_no_keys_or_connection_strings_anywhere():
    forbidden = re.compile(r"listKeys|listAccountSas|listServiceSas|AccountKey|SharedAccessSignature|primaryKey|"
                           r"InstrumentationKey|connectionStrings|WEBSITE_CONTENTAZUREFILECONNECTIONSTRING|@secure", re.I)
    for path in sorted(INFRA.rglob("*")):
        if path.suffix in (".bicep", ".json"):
            hits = forbidden.findall(path.read_text())
            assert not hits, f"{path.relative_to(ROOT)} mentions keys or connection strings: {hits}"


def test_storage_key_vault_and_insights_accept_identities_only(templates):
    (_, _, account), = _resources(templates, "Microsoft.Storage/storageAccounts")
    props = _body(account)["properties"]
    assert props["allowSharedKeyAccess"] is False and props["allowBlobPublicAccess"] is False
    assert props["defaultToOAuthAuthentication"] is True and props["minimumTlsVersion"] == "TLS1_2"
    (_, _, vault), = _resources(templates, "Microsoft.KeyVault/vaults")
    props = _body(vault)["properties"]
    assert props["enableRbacAuthorization"] is True, "Key Vault must use RBAC, not access policies"
    assert props["enableSoftDelete"] is True and props["enablePurgeProtection"] is True
    (_, _, insights), = _resources(templates, "Microsoft.Insights/components")
    props = _body(insights)["properties"]
    assert props["DisableLocalAuth"] is True, "Application Insights must take Entra-authenticated telemetry only"
    assert "WorkspaceResourceId" in props, "Application Insights must be workspace based (Log Analytics)"


def test_role_assignments_are_exactly_what_the_app_needs(templates):
    assignments = _resources(templates, "Microsoft.Authorization/roleAssignments")
    granted = {}
    for file, symbol, resource in assignments:
        template = templates[file]
        body = _body(resource)
        role_ref = _function(body["properties"]["roleDefinitionId"], "subscription_resource_id")
        assert role_ref and role_ref["resource_type"] == "Microsoft.Authorization/roleDefinitions", symbol
        role_var = role_ref["resource_name_1"]
        role_id = template["variables"][role_var]["value"]
        assert role_id in ROLES, f"{file}: {symbol} grants role {role_id}, which the app does not need"
        scope = template["resources"][body["scope"]]
        assert scope["existing"] and scope["type"] == ROLES[role_id][1], f"{symbol}: {ROLES[role_id][0]} on the wrong scope"
        name = _function(body["name"], "guid")
        assert name is not None, f"{symbol}: the name must be guid(scope, principal, role)"
        assert (_accessor_path(name["base_string"]), name["extra_string_1"], name["extra_string_2"]) == (
            f"{body['scope']}.id", "principalId", role_var), f"{symbol}: the name must be guid(scope.id, principalId, role)"
        assert body["properties"]["principalId"] == "principalId"
        assert body["properties"]["principalType"] == "ServicePrincipal"
        granted[role_id] = granted.get(role_id, 0) + 1
    assert granted == {role: 1 for role in ROLES}, {ROLES.get(r, (r,))[0]: n for r, n in granted.items()}
    roles_text = "".join(p.read_text() for p in BICEP_FILES if "roleAssignments" in p.read_text())
    assert "Secrets User" in roles_text, "say in a comment why Key Vault Secrets User is not enough"


# --------------------------------------------------------------------------------------------
# Function app, parameters, outputs, alert


def test_function_app_is_flex_consumption_python_with_identity(templates, main):
    app = _module_template(templates, main, "functionApp")
    (_, _, plan), = _resources(templates, "Microsoft.Web/serverfarms")
    assert _body(plan)["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    (_, _, site), = _resources(templates, "Microsoft.Web/sites")
    body = _body(site)
    assert "functionapp" in body["kind"] and "linux" in body["kind"]
    assert body["identity"]["type"] == "UserAssigned"
    assert body["properties"]["httpsOnly"] is True
    config = body["properties"]["functionAppConfig"]
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    assert main["modules"]["functionApp"]["config"]["params"]["deploymentContainerUrl"].endswith("${deploymentContainer}")
    assert config["runtime"]["name"] == "python"
    assert config["runtime"]["version"] == "pythonVersion"
    assert main["modules"]["functionApp"]["config"]["params"]["pythonVersion"] == "pythonVersion"
    assert main["variables"]["pythonVersion"]["value"] == "3.11"
    scale = config["scaleAndConcurrency"]
    assert scale == {"maximumInstanceCount": "maximumInstanceCount", "instanceMemoryMB": "instanceMemoryMB"}
    params = main["parameters"]
    assert main["modules"]["functionApp"]["config"]["params"]["maximumInstanceCount"] == "maximumInstanceCount"
    assert params["instanceMemoryMB"]["default"] == 2048
    # The worker shares one rate budget per ActiveCampaign account: a modest default bound.
    assert 1 <= params["maximumInstanceCount"]["default"] <= 20
    decorators = {d["type"]: d["argument"] for d in params["maximumInstanceCount"]["decorators"]}
    assert decorators.get("min_value") == 1 and decorators.get("max_value") == 1000
    assert app["resources"]  # the module declares the plan and the site itself


def test_parameters_file_matches_main(main):
    document = json.loads(PARAMETERS.read_text())
    assert document["$schema"].endswith("deploymentParameters.json#")
    given = document["parameters"]
    declared = main["parameters"]
    unknown = set(given) - set(declared)
    assert not unknown, f"main.parameters.json sets parameters main.bicep does not declare: {sorted(unknown)}"
    required = {name for name, p in declared.items() if p["default"] is None}
    assert required <= set(given), f"main.parameters.json lacks required parameters: {sorted(required - set(given))}"
    types = {"string": str, "int": int, "bool": bool, "object": dict, "array": list}
    for name, entry in given.items():
        expected = types[declared[name]["type"]]
        value = entry["value"]
        assert isinstance(value, expected) and not (expected is int and isinstance(value, bool)), f"{name}: {value!r}"
        allowed = [d["argument"] for d in declared[name]["decorators"] if d["type"] == "allowed"]
        assert not allowed or value in allowed[0], f"{name}={value!r} is not one of {allowed[0]}"


def test_outputs(main):
    missing = REQUIRED_OUTPUTS - set(main.get("outputs", {}))
    assert not missing, f"main.bicep lacks outputs {sorted(missing)}"


def _log_line_format() -> str:
    pattern = re.compile(r"""["'](export run finished:[^"']*)["']""")
    for path in sorted((ROOT / "exports").rglob("*.py")):
        found = pattern.findall(path.read_text())
        if found:
            return found[0]
    pytest.fail("the code no longer logs 'export run finished: run=... export=... status=...': "
                "the failed-run alert in infra/modules/monitoring.bicep depends on that line")


def test_failed_run_alert_matches_the_log_line(templates):
    rules = _resources(templates, "Microsoft.Insights/scheduledQueryRules")
    assert len(rules) == 1, "one failed-run alert rule is expected"
    file, _, rule = rules[0]
    criteria = _body(rule)["properties"]["criteria"]["allOf"]
    assert len(criteria) == 1
    query = criteria[0]["query"]
    if query in templates[file].get("variables", {}):
        query = templates[file]["variables"][query]["value"]
    query = query.replace("\\\\", "\\")  # Bicep string escapes
    assert criteria[0]["operator"] == "GreaterThan" and criteria[0]["threshold"] == 0
    line_format = _log_line_format()
    assert line_format.split(":")[0] + ":" in query
    # Evaluate the query's filters on lines the code writes, one per status.
    status_regex = re.search(r'Status = extract\(@"([^"]+)", 1, Message\)', query)
    assert status_regex, f"the alert query must extract the status: {query}"
    marker = re.search(r'Message has "([^"]+)"', query).group(1)
    alerted = re.search(r'where Status in \(([^)]*)\)', query)
    assert alerted, f"the alert query must filter on the statuses it fires for: {query}"
    alerted = set(re.findall(r'"(\w+)"', alerted.group(1)))
    assert alerted == {"failed", "needs_approval"}, "failed runs and runs whose leaver actions wait for an admin"
    for status in RunStatus:
        line = line_format % ("6f1c", "a2b3", status) if "%s" in line_format else \
            f"export run finished: run=6f1c export=a2b3 status={status}"
        extracted = re.search(status_regex.group(1), line)
        fires = marker in line and extracted is not None and extracted.group(1) in alerted
        assert fires == (status in ("failed", "needs_approval")), f"alert on {line!r}: fires={fires}"
