SELECT
    'order_revenue' AS kpi_id,
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
        periods_1.period_start AS period_start,
        coalesce(sum(anon_2.total), 0) AS value,
        NULL AS numerator,
        NULL AS denominator,
        coalesce(sum(anon_2.nonnull), 0) AS sample_size
    FROM kpi.periods AS periods_1
    LEFT OUTER JOIN (
        SELECT
            anon_3.day AS day,
            anon_3.total AS total,
            anon_3.nonnull AS nonnull,
            anon_3.low AS low,
            anon_3.high AS high,
            anon_3.n AS n,
            kpi_work.day_periods.period_start AS bucket
        FROM (
            SELECT
                anon_4.day AS day,
                sum(anon_4.x) AS total,
                count(anon_4.x) AS nonnull,
                min(anon_4.x) AS low,
                max(anon_4.x) AS high,
                count(*) AS n
            FROM (
                SELECT
                    CAST(CONVERT_TIMEZONE('Europe/Copenhagen', raw.orders.ordered_at) AS DATE) AS day,
                    raw.orders.revenue AS x
                FROM raw.orders
            ) AS anon_4
            GROUP BY anon_4.day
        ) AS anon_3
        JOIN kpi_work.day_periods ON kpi_work.day_periods.day = anon_3.day
            AND kpi_work.day_periods.grain = 'month'
    ) AS anon_2 ON anon_2.bucket = periods_1.period_start
    WHERE periods_1.grain = 'month'
    GROUP BY periods_1.period_start
) AS anon_1
JOIN kpi.periods AS p ON p.grain = 'month'
    AND p.period_start = anon_1.period_start
ORDER BY p.period_start
