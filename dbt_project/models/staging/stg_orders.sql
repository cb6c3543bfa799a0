with

source as (
    select * from {{ source('raw', 'fin_order') }}
),

renamed as (
    select
        order_id,
        account_id,
        bank_to as payee_bank,
        account_to as payee_account,
        amount,
        case k_symbol
            when 'POJISTNE' then 'insurance_payment'
            when 'SIPO' then 'household_payment'
            when 'LEASING' then 'leasing'
            when 'UVER' then 'loan_payment'
            else 'unspecified'
        end as category,
        k_symbol as category_code
    from source
)

select * from renamed
