// Merge a sample's shard predictions (given in shard order) into its result files. The sample's shard TSVs come
// too, in the same order: `virnucpro aggregate` checks that the predicted frame ids are exactly theirs.
process AGGREGATE {
    tag "${meta.id}"
    label 'process_single'

    input:
    tuple val(meta), path(predictions, arity: '1..*', stageAs: 'predictions/*'), path(shards, arity: '1..*', stageAs: 'shards/*'), path(records), path(reads, stageAs: 'input/*')

    output:
    tuple val(meta), path('aggregate/prediction_results.txt')             , emit: predictions
    tuple val(meta), path('aggregate/prediction_results_highestscore.csv'), emit: highestscore
    tuple val(meta), path("aggregate/${meta.id}.records.tsv")             , emit: records
    tuple val(meta), path("aggregate/${meta.id}.viral.fa")                , emit: viral
    tuple val(meta), path("aggregate/${meta.id}.summary.json")            , emit: summary
    tuple val(meta), path("aggregate/${meta.id}.chunks.tsv")              , emit: chunks
    tuple val(meta), path("aggregate/${meta.id}.viral_regions.tsv")       , emit: regions
    tuple val(meta), path("aggregate/${meta.id}.viral_regions.gff3")      , emit: regions_gff
    tuple val(meta), path("aggregate/${meta.id}.viral_regions.bed")       , emit: regions_bed
    tuple val(meta), path("aggregate/${meta.id}.viral_regions.fa")        , emit: regions_fasta
    // Every file the task wrote, whatever their names: the sample's published folder is built from this.
    tuple val(meta), path('aggregate/*')                                  , emit: results
    tuple val("${task.process}"), val('virnucpro'), eval('virnucpro --version | cut -d" " -f2'), topic: versions, emit: versions_virnucpro

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    // The channel delivers both lists in shard order; keep that order on the command line.
    def shard_predictions = (predictions instanceof List ? predictions : [predictions]).join(' ')
    def shard_frames = (shards instanceof List ? shards : [shards]).join(' ')
    """
    virnucpro aggregate \\
        --sample '${meta.id}' \\
        --predictions ${shard_predictions} \\
        --shards ${shard_frames} \\
        --records ${records} \\
        --input ${reads} \\
        --outdir aggregate \\
        ${args}
    """

    stub:
    """
    mkdir -p aggregate
    printf 'Sequence_ID\\tPrediction\\tscore1\\tscore2\\n' > aggregate/prediction_results.txt
    printf 'Modified_ID\\tIs_Virus\\n' > aggregate/prediction_results_highestscore.csv
    printf 'record_id\\tlength\\tstatus\\tn_chunks\\tn_frames\\tn_chunks_scored\\tn_chunks_viral\\tfraction_chunks_viral\\tmax_p_virus\\tmean_chunk_score\\tvirus_score\\tcall\\tn_regions\\tviral_bp\\tregion_call\\n' > aggregate/${meta.id}.records.tsv
    printf 'chunk_id\\trecord_id\\tchunk\\tstart\\tend\\tn_frames\\tmax_p_virus\\tmax_p_others\\tchunk_score\\tchunk_call\\tregion_id\\n' > aggregate/${meta.id}.chunks.tsv
    printf 'region_id\\trecord_id\\tstart\\tend\\tlength\\tfirst_chunk\\tlast_chunk\\tn_chunks\\tn_chunks_viral\\tmean_chunk_score\\tmax_chunk_score\\twhole_record\\n' > aggregate/${meta.id}.viral_regions.tsv
    printf '##gff-version 3\\n' > aggregate/${meta.id}.viral_regions.gff3
    touch aggregate/${meta.id}.viral.fa aggregate/${meta.id}.viral_regions.bed aggregate/${meta.id}.viral_regions.fa
    echo '{}' > aggregate/${meta.id}.summary.json
    """
}
