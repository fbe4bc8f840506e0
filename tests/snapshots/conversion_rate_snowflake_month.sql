SELECT
    'conversion_rate' AS kpi_id,
    'month' AS grain,
    p.period_start,
    p.period_end,
    p.is_complete_period,
    CAST(NULL AS VARCHAR) AS channel,
    CAST(NULL AS VARCHAR) AS device,
    CAST(NULL AS VARCHAR) AS campaign,
    CAST(anon_1.value AS DOUBLE) AS value,
    CAST(anon_1.numerator AS DOUBLE) AS numerator,
    CAST(anon_1.denominator AS DOUBLE) AS denominator,
    CAST(anon_1.sample_size AS BIGINT) AS sample_size,
    '<definition_version>' AS definition_version,
    CAST(CURRENT_TIMESTAMP AS TIMESTAMP_TZ) AS computed_at
FROM (
    SELECT
        anon_2.period_start AS period_start,
        CAST(anon_2.value AS DOUBLE) / nullif(CAST(anon_3.value AS DOUBLE), 0.0) AS value,
        anon_2.value AS numerator,
        anon_3.value AS denominator,
        anon_3.sample_size AS sample_size
    FROM (
        SELECT
            periods_1.period_start AS period_start,
            coalesce(sum(anon_4.total), 0) AS value,
            NULL AS numerator,
            NULL AS denominator,
            coalesce(sum(anon_4.nonnull), 0) AS sample_size
        FROM kpi.periods AS periods_1
        LEFT OUTER JOIN (
            SELECT
                anon_5.day AS day,
                anon_5.total AS total,
                anon_5.nonnull AS nonnull,
                anon_5.low AS low,
                anon_5.high AS high,
                anon_5.n AS n,
                kpi_work.day_periods.period_start AS bucket
            FROM (
                SELECT
                    anon_6.day AS day,
                    sum(anon_6.x) AS total,
                    count(anon_6.x) AS nonnull,
                    min(anon_6.x) AS low,
                    max(anon_6.x) AS high,
                    count(*) AS n
                FROM (
                    SELECT
                        raw.ga4_traffic.date AS day,
                        raw.ga4_traffic.transactions AS x
                    FROM raw.ga4_traffic
                ) AS anon_6
                GROUP BY anon_6.day
            ) AS anon_5
            JOIN kpi_work.day_periods ON kpi_work.day_periods.day = anon_5.day
                AND kpi_work.day_periods.grain = 'month'
        ) AS anon_4 ON anon_4.bucket = periods_1.period_start
        WHERE periods_1.grain = 'month'
        GROUP BY periods_1.period_start
    ) AS anon_2
    JOIN (
        SELECT
            periods_2.period_start AS period_start,
            coalesce(sum(anon_7.total), 0) AS value,
            NULL AS numerator,
            NULL AS denominator,
            coalesce(sum(anon_7.nonnull), 0) AS sample_size
        FROM kpi.periods AS periods_2
        LEFT OUTER JOIN (
            SELECT
                anon_8.day AS day,
                anon_8.total AS total,
                anon_8.nonnull AS nonnull,
                anon_8.low AS low,
                anon_8.high AS high,
                anon_8.n AS n,
                kpi_work.day_periods.period_start AS bucket
            FROM (
                SELECT
                    anon_9.day AS day,
                    sum(anon_9.x) AS total,
                    count(anon_9.x) AS nonnull,
                    min(anon_9.x) AS low,
                    max(anon_9.x) AS high,
                    count(*) AS n
                FROM (
                    SELECT
                        raw.ga4_traffic.date AS day,
                        raw.ga4_traffic.sessions AS x
                    FROM raw.ga4_traffic
                ) AS anon_9
                GROUP BY anon_9.day
            ) AS anon_8
            JOIN kpi_work.day_periods ON kpi_work.day_periods.day = anon_8.day
                AND kpi_work.day_periods.grain = 'month'
        ) AS anon_7 ON anon_7.bucket = periods_2.period_start
        WHERE periods_2.grain = 'month'
        GROUP BY periods_2.period_start
    ) AS anon_3 ON anon_3.period_start = anon_2.period_start
) AS anon_1
JOIN kpi.periods AS p ON p.grain = 'month'
    AND p.period_start = anon_1.period_start
ORDER BY p.period_start
