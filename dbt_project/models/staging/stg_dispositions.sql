with

source as (
    select * from {{ source('raw', 'fin_disp') }}
),

renamed as (
    select
        disp_id,
        client_id,
        account_id,
        case type
            when 'OWNER' then 'owner'
            when 'DISPONENT' then 'disponent'
        end as disposition_type,
        type as disposition_type_code
    from source
)

select * from renamed
