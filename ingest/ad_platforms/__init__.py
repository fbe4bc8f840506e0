"""Ad platform rows (Google Ads, Meta: ingest.google_ads, ingest.meta) into the warehouse."""
