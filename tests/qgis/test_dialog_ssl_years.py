"""The data-source dialog and QGIS's SSL settings (trusted CAs from the Certificate Manager, SSL
server exceptions), and the years it shows as complete or partial."""
from __future__ import annotations

import pytest
from qgis.core import QgsApplication, QgsAuthCertUtils, QgsAuthConfigSslServer
from qgis.PyQt.QtNetwork import QSslCertificate, QSslError

from support.qgis_helpers import auth_manager, wait_for
from tessera_qgis.core.connections import Connection
from tessera_qgis.core.sources import host_port
from tessera_qgis.core.store import open_store
from tessera_qgis.dialog import TesseraSourceWidget
from tessera_qgis.settings import Settings, qgis_ssl_settings, upsert_connection

pytestmark = pytest.mark.usefixtures("provider_active", "no_saved_connections")


def connected_widget(qgis_iface, conn: Connection) -> TesseraSourceWidget:
    upsert_connection(conn)
    w = TesseraSourceWidget(iface=qgis_iface)
    w.reload_connections(conn.name)
    w.connect_button.click()
    wait_for(w.task)
    return w


def _rebuild(am) -> None:
    """What QGIS's Certificate Manager does after a change: trust policies, then the CAs."""
    am.rebuildCertTrustCache()
    am.rebuildCaCertsCache()
    am.rebuildTrustedCaCertsCache()
    am.rebuildIgnoredSslErrorCache()


@pytest.fixture
def trusted_ca(loopback_ca):
    """The session CA imported into QGIS's Certificate Manager as a trusted authority."""
    am = auth_manager()
    cert = QSslCertificate(loopback_ca.ca_pem.encode())
    assert not cert.isNull()
    assert am.storeCertAuthority(cert)
    assert am.storeCertTrustPolicy(cert, QgsAuthCertUtils.CertTrustPolicy.Trusted)
    _rebuild(am)
    yield cert
    am.removeCertTrustPolicy(cert)
    am.removeCertAuthority(cert)
    _rebuild(am)
    assert qgis_ssl_settings()[0] is None, "the CA is gone again"


@pytest.fixture
def ssl_exception(sample_https, loopback_ca):
    """An SSL server exception for the HTTPS test server that ignores its chain errors."""
    am = auth_manager()
    cert = QSslCertificate(loopback_ca.cert_pem.encode())
    cfg = QgsAuthConfigSslServer()
    cfg.setSslCertificate(cert)
    cfg.setSslHostPort(host_port(sample_https.url))
    cfg.setSslIgnoredErrorEnums([QSslError.SslError.SelfSignedCertificateInChain,
                                 QSslError.SslError.UnableToGetLocalIssuerCertificate])
    assert am.storeSslCertCustomConfig(cfg)
    _rebuild(am)
    yield cfg
    am.removeSslCertCustomConfig(QgsAuthCertUtils.shaHexForCert(cert), host_port(sample_https.url))
    _rebuild(am)
    assert qgis_ssl_settings()[1] == (), "the exception is gone again"


def test_without_the_ca_the_dialog_says_the_certificate_is_not_trusted(qgis_iface, sample_https):
    assert qgis_ssl_settings() == (None, ())
    w = connected_widget(qgis_iface, Connection("https untrusted", sample_https.store_url))
    assert w.store is None and w.last_failure is not None
    assert w.last_failure[0] == "certificate", w.last_failure
    text = w.info.toPlainText()
    assert "certificate is not trusted" in text and "Certificate Manager" in text, text


def test_a_ca_trusted_in_qgis_opens_the_https_store(qgis_iface, sample_https, trusted_ca, loopback_ca):
    opts = Settings.load().store_options()
    assert opts.ca_pem is not None and loopback_ca.ca_pem.strip() in opts.ca_pem
    assert opts.ca_pem.count("BEGIN CERTIFICATE") == 1, "only the CAs the user added, not the system's"
    assert opts.verifies(sample_https.url)
    assert open_store(sample_https.store_url, opts).years == [2024, 2025]
    w = connected_widget(qgis_iface, Connection("https trusted", sample_https.store_url))
    assert w.store is not None, w.last_failure
    assert "utm31" in w.info.toPlainText()


def test_an_untrusted_policy_keeps_the_ca_out(sample_https, trusted_ca):
    am = QgsApplication.authManager()
    am.storeCertTrustPolicy(trusted_ca, QgsAuthCertUtils.CertTrustPolicy.Untrusted)
    _rebuild(am)
    assert Settings.load().store_options().ca_pem is None


def test_an_ssl_server_exception_skips_the_check_for_that_host(qgis_iface, sample_https, ssl_exception):
    logged = []
    QgsApplication.messageLog().messageReceived.connect(lambda msg, tag, level: logged.append(msg))
    hp = host_port(sample_https.url)
    opts = Settings.load().store_options(url=sample_https.store_url)
    assert opts.ca_pem is None and opts.insecure_hosts == (hp,)
    assert not opts.verifies(sample_https.url) and opts.verifies("https://localhost:9/x.zarr")
    assert any(hp in m and "not checked" in m for m in logged), logged
    w = connected_widget(qgis_iface, Connection("https exception", sample_https.store_url))
    assert w.store is not None, w.last_failure


def test_metadata_names_the_partial_year_and_its_zones(qgis_iface, partial_year_store):
    w = connected_widget(qgis_iface, Connection("partial", str(partial_year_store)))
    assert w.store is not None, w.last_failure
    text = w.info.toPlainText()
    assert "2024, 2025 (partial: 1 of 2 zones: utm30)" in text, text
    assert [w.year.itemText(i) for i in range(w.year.count())] == ["2024", "2025 (partial)"]
    assert [w.year.itemData(i) for i in range(w.year.count())] == [2024, 2025]
