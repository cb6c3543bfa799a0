with

source as (
    select * from {{ source('raw', 'fin_card') }}
),

renamed as (
    select
        card_id,
        disp_id,
        case type
            when 'classic' then 'classic'
            when 'gold' then 'gold'
            when 'junior' then 'junior'
        end as card_type,
        type as card_type_code,
        issued as issued_date
    from source
)

select * from renamed
