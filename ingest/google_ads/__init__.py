"""Google Ads through Google's official ``google-ads`` client: campaign x day spend,
clicks, impressions and the conversions the platform claims (ingest.google_ads.pull), with
the errors a data engineer can act on (ingest.google_ads.errors).

Status (issue #17): the client layer only. It is tested against the TLS gRPC and OAuth fake
in demo/fake_google_ads; loading its rows into the warehouse (a source, an asset with a
re-pull window, currency conversion, the channel taxonomy) is not built yet.
"""
