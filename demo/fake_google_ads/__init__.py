"""A local stand-in for the Google Ads API over real, TLS-secured gRPC, and for Google's
OAuth token endpoint over HTTP, so the official ``google-ads`` client runs unchanged
(demo.fake_google_ads.server)."""

from demo.fake_google_ads.server import FakeGoogleAds, Fault
from demo.fake_google_ads.tls import SelfSignedCertificate

__all__ = ["FakeGoogleAds", "Fault", "SelfSignedCertificate"]
