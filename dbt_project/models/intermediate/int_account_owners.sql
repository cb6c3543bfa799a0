{#
    One row per account: its owner (the client of its OWNER disposition; the lowest disp_id should
    the data ever hold two) and how many disponents share it.
#}
with

dispositions as (
    select * from {{ ref('stg_dispositions') }}
),

clients as (
    select * from {{ ref('stg_clients') }}
),

owner_dispositions as (
    select distinct on (account_id)
        account_id,
        disp_id,
        client_id
    from dispositions
    where disposition_type = 'owner'
    order by account_id, disp_id
),

disponents as (
    select
        account_id,
        count(*) as disponent_count
    from dispositions
    where disposition_type = 'disponent'
    group by account_id
),

final as (
    select
        owner_dispositions.account_id,
        owner_dispositions.disp_id as owner_disp_id,
        owner_dispositions.client_id as owner_client_id,
        clients.birth_date as owner_birth_date,
        clients.sex as owner_sex,
        clients.district_id as owner_district_id,
        coalesce(disponents.disponent_count, 0) as disponent_count
    from owner_dispositions
    left join clients
        on owner_dispositions.client_id = clients.client_id
    left join disponents
        on owner_dispositions.account_id = disponents.account_id
)

select * from final
