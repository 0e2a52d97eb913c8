/*
 * VIRNUCPRO: per sample [POOL_MATES, paired reads only] -> PREPROCESS -> SHARD -> EMBED (per shard, GPU) -> CLASSIFY
 * (per shard) -> AGGREGATE, then one REPORT over all samples and MULTIQC over the report's MultiQC files and the
 * software versions, with PROVENANCE (model checks and checksums, precision) once per run, before any EMBED: EMBED
 * takes its record, so a wrong model stops the run before GPU work. Shards are
 * contiguous slices of a sample's frames, so putting the shard predictions back in shard-name order restores
 * input order; AGGREGATE gets the shard TSVs too and checks that.
 */

include { PREPROCESS } from '../modules/local/preprocess'
include { SHARD      } from '../modules/local/shard'
include { EMBED      } from '../modules/local/embed'
include { CLASSIFY   } from '../modules/local/classify'
include { AGGREGATE  } from '../modules/local/aggregate'
include { REPORT     } from '../modules/local/report'
include { PROVENANCE } from '../modules/local/provenance'
include { POOL_MATES } from '../modules/local/pool_mates'
include { MULTIQC    } from '../modules/local/multiqc'

workflow VIRNUCPRO {
    take:
    ch_samples      // [ meta, reads ]: reads is one file, or the two mate files of paired reads

    main:
    def esm_model     = file(params.esm_model, checkIfExists: true)
    def dnabert_model = file(params.dnabert_model, checkIfExists: true)
    def classifier    = file(params.classifier, checkIfExists: true)
    // Outside the work dir: retried and resumed tasks run in new work dirs and must find earlier checkpoints.
    def checkpoint_dir = params.checkpoint_dir ?: "${workflow.workDir.parent}/virnucpro-checkpoints"

    PROVENANCE(esm_model, dnabert_model, classifier, params.precision, params.chunk_length, checkpoint_dir)

    // Paired reads become one FASTA holding both mates (ids made unique); other samples keep their one file.
    ch_input = ch_samples.branch { meta, reads ->
        paired: reads instanceof List
        single: true
    }
    POOL_MATES(ch_input.paired.map { meta, reads -> [meta, reads[0], reads[1]] })
    ch_reads = ch_input.single.mix(POOL_MATES.out.reads)

    PREPROCESS(ch_reads, params.chunk_length)

    SHARD(PREPROCESS.out.frames, params.shard_tokens)

    // Each sample's shard files, in shard order.
    ch_shard_lists = SHARD.out.shards.map { meta, shards ->
        [meta, (shards instanceof List ? shards : [shards]).sort(false, shardOrder())]
    }
    // One item per shard; the sample meta gains the shard name and the sample's shard count (for groupKey).
    ch_shards = ch_shard_lists.flatMap { meta, shards ->
        shards.collect { shard -> [meta + [shard: shard.baseName, n_shards: shards.size()], shard] }
    }

    EMBED(ch_shards, esm_model, dnabert_model, checkpoint_dir, PROVENANCE.out.provenance)

    CLASSIFY(EMBED.out.features, classifier)

    // Back to one item per sample, as soon as its last shard is classified, shard predictions in shard order.
    ch_predictions = CLASSIFY.out.predictions
        .map { meta, predictions -> [groupKey(sampleMeta(meta), meta.n_shards), predictions] }
        .groupTuple()
        .map { key, predictions -> [key.getGroupTarget(), predictions.sort(false, shardOrder())] }

    ch_aggregate = ch_predictions
        .join(ch_shard_lists)
        .join(PREPROCESS.out.records)
        .join(ch_reads)

    AGGREGATE(ch_aggregate, params.chunk_length)

    ch_sample_summaries = AGGREGATE.out.summary.map { meta, summary -> summary }.toSortedList { a, b -> a.name <=> b.name }
    ch_embed_summaries = EMBED.out.summary.map { meta, summary -> summary }.toSortedList { a, b -> a.name <=> b.name }
    // combine() concatenates list items, so each list of files travels wrapped in a one-element list.
    ch_report = ch_sample_summaries
        .map { summaries -> [summaries] }
        .combine(ch_embed_summaries.map { summaries -> [summaries] })
        .map { sample_summaries, embed_summaries -> [[id: 'report'], sample_summaries, embed_summaries] }

    REPORT(ch_report, PROVENANCE.out.provenance)

    // Software versions, from every process's `topic: versions` outputs; a `virnucpro --versions` output holds
    // one `tool: version` line per tool. The *_mqc_versions.yml name is what MultiQC reads as software versions.
    ch_versions = channel.topic('versions')
        .flatMap { process, tool, version -> versionRows(process.tokenize(':').last(), tool, version.toString()) }
        .unique()
        .toList()
        .map { rows -> versionsYaml(rows) }
        .collectFile(storeDir: "${params.outdir}/pipeline_info", name: 'virnucpro_software_mqc_versions.yml', newLine: true)

    // REPORT's MultiQC custom content plus the versions; combine() appends the versions file to the list.
    ch_multiqc = REPORT.out.report
        .map { meta, files -> (files instanceof List ? files : [files]).findAll { f -> f.name.contains('_mqc') } }
        .combine(ch_versions)
        .map { files -> [[id: 'multiqc'], files] }
    MULTIQC(ch_multiqc, file("${projectDir}/assets/multiqc_config.yml", checkIfExists: true))

    results = AGGREGATE.out.summary
    report = REPORT.out.report
    multiqc_report = MULTIQC.out.report

    emit:
    results
    report
    multiqc_report
}

// Shard files in shard order: shard_00000 … shard_99999, shard_100000 …, i.e. by name length, then by name.
def shardOrder() {
    return { a, b -> a.name.length() <=> b.name.length() ?: a.name <=> b.name } as Comparator
}

def versionRows(String process, String tool, String version) {
    if (tool != 'virnucpro --versions') {
        return [[process, tool, version.trim()]]
    }
    return version.readLines().findAll { line -> line.contains(': ') }.collect { line ->
        def (name, value) = line.split(': ', 2) as List
        [process, name.trim(), value.trim()]
    }
}

def sampleMeta(Map meta) {
    return meta.findAll { key, value -> !(key in ['shard', 'n_shards']) }
}

def versionsYaml(List rows) {
    def byProcess = new TreeMap()
    rows.each { process, tool, version -> byProcess.get(process, new TreeMap())[tool] = version }
    byProcess['Workflow'] = new TreeMap([Nextflow: workflow.nextflow.version.toString(), virnucpro: workflow.manifest.version])
    return byProcess.collect { process, tools ->
        (["${process}:"] + tools.collect { tool, version -> "  ${tool}: '${version}'" }).join('\n')
    }.join('\n')
}
