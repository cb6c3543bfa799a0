with

source as (
    select * from {{ source('raw', 'fin_client') }}
),

parsed as (
    select
        client_id,
        district_id,
        birth_number,
        substr(birth_number, 1, 2)::int as birth_yy,
        substr(birth_number, 3, 2)::int as birth_mm_coded,
        substr(birth_number, 5, 2)::int as birth_dd
    from source
    where birth_number ~ '^[0-9]{6}$'
),

decoded as (
    select
        client_id,
        make_date(1900 + birth_yy, birth_mm_coded % 50, birth_dd) as birth_date,
        case when birth_mm_coded > 50 then 'female' else 'male' end as sex,
        district_id,
        birth_number
    from parsed
)

select * from decoded
