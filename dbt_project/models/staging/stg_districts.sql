with

source as (
    select * from {{ source('raw', 'fin_district') }}
),

renamed as (
    select
        district_id,
        a2 as district_name,
        a3 as region,
        a4 as inhabitants,
        a5 as municipalities_under_500,
        a6 as municipalities_500_to_1999,
        a7 as municipalities_2000_to_9999,
        a8 as municipalities_10000_plus,
        a9 as cities,
        a10 as urban_ratio_pct,
        a11 as average_salary,
        a12 as unemployment_rate_1995_pct,
        a13 as unemployment_rate_1996_pct,
        a14 as entrepreneurs_per_1000,
        a15 as crimes_1995,
        a16 as crimes_1996,
        round(a15 * 1000.0 / nullif(a4, 0), 2) as crimes_1995_per_1000,
        round(a16 * 1000.0 / nullif(a4, 0), 2) as crimes_1996_per_1000
    from source
)

select * from renamed
