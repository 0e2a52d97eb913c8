// Merge a sample's shard predictions (given in shard order) into its result files.
process AGGREGATE {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(predictions, arity: '1..*', stageAs: 'predictions/*'), path(records), path(reads, stageAs: 'input/*')

    output:
    tuple val(meta), path('aggregate/prediction_results.txt')             , emit: predictions
    tuple val(meta), path('aggregate/prediction_results_highestscore.csv'), emit: highestscore
    tuple val(meta), path("aggregate/${meta.id}.records.tsv")             , emit: records
    tuple val(meta), path("aggregate/${meta.id}.viral.fa")                , emit: viral
    tuple val(meta), path("aggregate/${meta.id}.summary.json")            , emit: summary
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | cut -d" " -f2'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    // The channel delivers the shards sorted by name; keep that order on the command line.
    def shard_predictions = (predictions instanceof List ? predictions : [predictions]).join(' ')
    """
    virnucpro aggregate \\
        --sample '${meta.id}' \\
        --predictions ${shard_predictions} \\
        --records ${records} \\
        --input ${reads} \\
        --outdir aggregate \\
        ${args}
    """

    stub:
    """
    mkdir -p aggregate
    touch aggregate/prediction_results.txt aggregate/prediction_results_highestscore.csv
    touch aggregate/${meta.id}.records.tsv aggregate/${meta.id}.viral.fa
    echo '{}' > aggregate/${meta.id}.summary.json
    """
}
