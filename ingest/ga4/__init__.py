"""Extract GA4 reports with the official Data API client (``google.analytics.data_v1beta``)
and load them into the warehouse.

Plain domain code: no Dagster imports, so it can be tested against ``demo.fake_ga4``
and reused from any orchestrator (see ``shared/notes/ga4.md`` for the underlying API facts).
Import from the module that does the job:

- :mod:`ingest.ga4.errors`: the errors every part raises (:class:`GA4Error` and subclasses);
- :mod:`ingest.ga4.filters`: dimension and metric filters, parsed from YAML, sent as protos;
- :mod:`ingest.ga4.spec`: :class:`ReportSpec`, what a report asks for, checked against the
  API's limits;
- :mod:`ingest.ga4.client`: :func:`make_client`, credentials and the gRPC channel;
- :mod:`ingest.ga4.retry`: bounded retries, and which API errors are final;
- :mod:`ingest.ga4.quota`: when the daily token quota refills, the quota a response reports;
- :mod:`ingest.ga4.request`: one RunReport request, validated before it is sent;
- :mod:`ingest.ga4.rows`: a response page as a typed DataFrame, the ``(other)`` row flagged;
- :mod:`ingest.ga4.run`: paging one report (:func:`run_report`), ``BatchRunReports``;
- :mod:`ingest.ga4.pull`: a report period by period, in batches, within a quota floor;
- :mod:`ingest.ga4.reports`: the reports declared in ``kpi_definitions/ga4/reports.yaml``;
- :mod:`ingest.ga4.load_log`: ``raw.ga4_load_log``, one row per request;
- :mod:`ingest.ga4.loading`: a declared report pulled for every property and written to its
  table (the Dagster asset in ``assets/ga4/reports.py`` wraps it).
"""
