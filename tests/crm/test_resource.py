"""The CRM resource: modes from the environment, secrets as EnvVar, the sandbox connection."""

from __future__ import annotations

import pytest
from dagster import EnvVar
from pydantic import ValidationError

from acton_pipelines.crm.client import CrmUnavailable, RetryPolicy
from acton_pipelines.crm.resource import SalesforceResource, crm_resource_from_env
from acton_pipelines.crm.sandbox_connection import sandbox_paths
from crm_sandbox import (
    SANDBOX_PASSWORD,
    SANDBOX_SECURITY_TOKEN,
    SANDBOX_USERNAME,
    SandboxServer,
)
from tests.conftest import ActonHome


def test_sandbox_is_the_default_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTON_CRM_MODE", raising=False)
    assert crm_resource_from_env().mode == "sandbox"


def test_password_mode_passes_secrets_as_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTON_CRM_MODE", "password")
    monkeypatch.setenv("SALESFORCE_DOMAIN", "acme.my")
    resource = crm_resource_from_env()
    assert resource.mode == "password" and resource.domain == "acme.my"
    assert resource.username == EnvVar("SALESFORCE_USERNAME")
    assert resource.password == EnvVar("SALESFORCE_PASSWORD")
    assert resource.security_token == EnvVar("SALESFORCE_SECURITY_TOKEN")


def test_missing_credentials_name_the_variables_and_never_a_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACTON_CRM_MODE", "password")
    monkeypatch.setenv("SALESFORCE_USERNAME", "ops@example.com")
    monkeypatch.setenv("SALESFORCE_PASSWORD", "hunter2-secret")
    monkeypatch.delenv("SALESFORCE_SECURITY_TOKEN", raising=False)
    resource = crm_resource_from_env(as_env_vars=False)
    with pytest.raises(CrmUnavailable) as caught, resource.connect():
        pass
    message = str(caught.value)
    assert "SALESFORCE_SECURITY_TOKEN" in message
    assert "hunter2-secret" not in message and "ops@example.com" not in message


def test_client_credentials_mode_needs_key_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = SalesforceResource(mode="client_credentials", consumer_key="key")
    with pytest.raises(CrmUnavailable, match="SALESFORCE_CONSUMER_SECRET"), resource.connect():
        pass


def test_an_unknown_mode_says_which_modes_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTON_CRM_MODE", "oauth")
    with pytest.raises(CrmUnavailable, match="sandbox, password, client_credentials"):
        crm_resource_from_env()


def test_embedded_sandbox_starts_for_the_connection_and_stops_after(acton_home: ActonHome) -> None:
    with SalesforceResource().connect() as client:
        instance = client.sf.sf_instance
        assert instance.startswith("127.0.0.1:")
        assert next(client.query_pages("SELECT COUNT() FROM Contact")).total_size > 0
    with pytest.raises(CrmUnavailable):
        from acton_pipelines.crm.sandbox_connection import sandbox_login

        sandbox_login(f"https://{instance}", sandbox_paths()[1] / "ca.pem", "59.0")


def test_a_running_sandbox_is_used_through_acton_sandbox_url(
    acton_home: ActonHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path, cert_dir = sandbox_paths()
    with SandboxServer(db_path, cert_dir) as server:
        monkeypatch.setenv("ACTON_SANDBOX_URL", server.instance_url)
        with crm_resource_from_env(as_env_vars=False).connect() as client:
            client.describe("Lead")
        assert server.api_usage >= 1


def test_first_use_seeds_a_missing_sandbox(acton_home: ActonHome) -> None:
    acton_home.sandbox_db.unlink()
    with SalesforceResource().connect() as client:
        assert next(client.query_pages("SELECT COUNT() FROM Lead")).total_size > 0
    assert acton_home.sandbox_db.exists()


@pytest.mark.parametrize("mode", ["password", "client_credentials"])
def test_salesforce_login_url_is_read_for_the_production_modes(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("ACTON_CRM_MODE", mode)
    monkeypatch.delenv("SALESFORCE_LOGIN_URL", raising=False)
    assert crm_resource_from_env().login_url is None

    monkeypatch.setenv("SALESFORCE_LOGIN_URL", "https://127.0.0.1:8443")
    assert crm_resource_from_env().login_url == "https://127.0.0.1:8443"


@pytest.mark.parametrize(
    "login_url",
    ["https://login.example.com", "http://127.0.0.1:8443", "https://127.0.0.1:8443/services"],
)
def test_a_login_url_other_than_loopback_https_is_refused_before_any_login(
    login_url: str,
) -> None:
    resource = SalesforceResource(
        mode="password",
        username="ops@example.com",
        password="hunter2-secret",
        security_token="token-secret",
        login_url=login_url,
    )
    with pytest.raises(CrmUnavailable) as caught, resource.connect():
        pass
    message = str(caught.value)
    assert message.startswith(f"SALESFORCE_LOGIN_URL={login_url!r} must be a loopback HTTPS")
    assert "\n" not in message and "secret" not in message


def test_client_credentials_need_a_my_domain() -> None:
    resource = SalesforceResource(
        mode="client_credentials", consumer_key="key", consumer_secret="secret", domain="login"
    )
    my_domain = "SALESFORCE_DOMAIN set to your My Domain"
    with pytest.raises(CrmUnavailable, match=my_domain), resource.connect():
        pass


def test_a_test_login_server_needs_its_ca_in_requests_ca_bundle(
    acton_home: ActonHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    db_path, cert_dir = sandbox_paths()
    with SandboxServer(db_path, cert_dir) as server:
        resource = SalesforceResource(
            mode="password",
            username=SANDBOX_USERNAME,
            password=SANDBOX_PASSWORD,
            security_token=SANDBOX_SECURITY_TOKEN,
            login_url=server.instance_url,
        )
        with pytest.raises(CrmUnavailable) as caught, resource.connect():
            pass
        assert "REQUESTS_CA_BUNDLE" in str(caught.value)

        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(server.ca_cert_path))
        with resource.connect() as client:
            assert f"https://{client.sf.sf_instance}" == server.instance_url
            assert next(client.query_pages("SELECT COUNT() FROM Lead")).total_size > 0


def test_sandbox_mode_logs_in_with_the_logins_a_shared_sandbox_was_served_with(
    acton_home: ActonHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path, cert_dir = sandbox_paths()
    shared = {"username": "etl@acme-shared.example", "password": "Shared-Passw0rd-7"}
    with SandboxServer(db_path, cert_dir, **shared) as server:
        monkeypatch.setenv("ACTON_SANDBOX_URL", server.instance_url)
        resource = crm_resource_from_env(as_env_vars=False)
        with pytest.raises(CrmUnavailable, match="ACTON_SANDBOX_"), resource.connect():
            pass

        monkeypatch.setenv("ACTON_SANDBOX_USERNAME", shared["username"])
        monkeypatch.setenv("ACTON_SANDBOX_PASSWORD", shared["password"])
        with crm_resource_from_env(as_env_vars=False).connect() as client:
            client.describe("Lead")


# --- retries ---------------------------------------------------------------------------------


def test_retries_default_to_ten_minutes_of_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTON_CRM_RETRY_MINUTES", raising=False)
    monkeypatch.delenv("ACTON_CRM_MODE", raising=False)
    policy = crm_resource_from_env().retry_policy()

    assert policy == RetryPolicy(
        give_up_after_seconds=600, initial_wait_seconds=2, max_wait_seconds=120
    )


@pytest.mark.parametrize("mode", ["sandbox", "password"])
def test_acton_crm_retry_minutes_sets_the_give_up_time(
    monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    monkeypatch.setenv("ACTON_CRM_MODE", mode)
    monkeypatch.setenv("ACTON_CRM_RETRY_MINUTES", " 2.5 ")
    resource = crm_resource_from_env()

    assert resource.retry_minutes == 2.5
    assert resource.retry_policy().give_up_after_seconds == 150


@pytest.mark.parametrize("value", ["ten", "-1", "nan", "inf", "5m"])
def test_a_bad_acton_crm_retry_minutes_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ACTON_CRM_RETRY_MINUTES", value)
    with pytest.raises(CrmUnavailable) as caught:
        crm_resource_from_env()
    message = str(caught.value)
    assert message.startswith(f"ACTON_CRM_RETRY_MINUTES={value!r} is not a number of minutes")
    assert "\n" not in message


def test_zero_retry_minutes_turns_retries_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTON_CRM_RETRY_MINUTES", "0")
    policy = crm_resource_from_env().retry_policy()
    assert policy.give_up_after_seconds == 0


def test_test_speed_retries_are_still_configurable_by_their_old_names() -> None:
    resource = SalesforceResource(retry_initial_wait_seconds=0.01, retry_attempts=3)
    policy = resource.retry_policy()

    assert policy.initial_wait_seconds == 0.01 and policy.max_attempts == 3


def test_a_short_give_up_time_caps_the_longest_wait() -> None:
    policy = SalesforceResource(retry_minutes=0.5).retry_policy()
    assert policy.max_wait_seconds == 30


@pytest.mark.parametrize(
    "fields",
    [{"retry_minutes": -1}, {"retry_initial_wait_seconds": 0}, {"retry_attempts": 0}],
)
def test_retry_fields_are_checked(fields: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        SalesforceResource(**fields)  # type: ignore[arg-type]


def test_the_connected_client_gets_the_resource_policy(acton_home: ActonHome) -> None:
    resource = SalesforceResource(
        retry_minutes=0.001, retry_initial_wait_seconds=0.001, retry_max_wait_seconds=0.002
    )
    with resource.connect() as client:
        assert client.retry_policy == resource.retry_policy()
