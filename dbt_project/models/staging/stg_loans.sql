with

source as (
    select * from {{ source('raw', 'fin_loan') }}
),

renamed as (
    select
        loan_id,
        account_id,
        date as granted_date,
        amount,
        duration as duration_months,
        payments as monthly_payment,
        case status
            when 'A' then 'finished_ok'
            when 'B' then 'finished_unpaid'
            when 'C' then 'running_ok'
            when 'D' then 'running_in_debt'
        end as loan_status,
        status as loan_status_code,
        status in ('A', 'B') as is_finished,
        status in ('B', 'D') as is_problematic
    from source
)

select * from renamed
