"""Meta (Facebook) Ads through Meta's official ``facebook-business`` client: campaign x day
spend, clicks, impressions and the purchases the platform claims (ingest.meta.pull), with
the errors a data engineer can act on (ingest.meta.errors).

Status: the client layer only. It is tested against the Graph API fake in demo/fake_meta;
loading its rows into the warehouse (a source, an asset with a re-pull window, currency
conversion, the channel taxonomy) is not built yet.
"""
