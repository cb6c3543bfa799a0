with

source as (
    select * from {{ source('raw', 'fin_account') }}
),

renamed as (
    select
        account_id,
        district_id,
        case frequency
            when 'POPLATEK MESICNE' then 'monthly'
            when 'POPLATEK TYDNE' then 'weekly'
            when 'POPLATEK PO OBRATU' then 'after_transaction'
        end as statement_frequency,
        frequency as statement_frequency_code,
        date as opened_date
    from source
)

select * from renamed
