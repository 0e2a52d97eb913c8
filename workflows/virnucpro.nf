/*
 * VIRNUCPRO: per sample [POOL_MATES, paired reads only] -> PREPROCESS -> SHARD -> EMBED (per shard: GPU embedding,
 * then the classifier's scores) -> AGGREGATE, then one REPORT over all samples and MULTIQC over the report's MultiQC files and the
 * software versions, with PROVENANCE (model checks and checksums, precision) once per run, beside the rest: a
 * wrong model fails PROVENANCE (stopping the run) and EMBED's own shape and width checks before its GPU work, and
 * nothing is published before PROVENANCE passed. Shards are
 * contiguous slices of a sample's frames, so putting the shard predictions back in shard-name order restores
 * input order; AGGREGATE gets the shard TSVs too and checks that.
 */

include { PREPROCESS } from '../modules/local/preprocess'
include { SHARD      } from '../modules/local/shard'
include { EMBED      } from '../modules/local/embed'
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

    PROVENANCE(esm_model, dnabert_model, classifier, checkpoint_dir)

    // Paired reads become one FASTA holding both mates (ids made unique); other samples keep their one file.
    ch_input = ch_samples.branch { meta, reads ->
        paired: reads instanceof List
        single: true
    }
    POOL_MATES(ch_input.paired.map { meta, reads -> [meta, reads[0], reads[1]] })
    ch_reads = ch_input.single.mix(POOL_MATES.out.reads)

    PREPROCESS(ch_reads)

    SHARD(PREPROCESS.out.frames.join(PREPROCESS.out.frame_stats))

    // Each sample's shard files, in shard order.
    ch_shard_lists = SHARD.out.shards.map { meta, shards ->
        [meta, (shards instanceof List ? shards : [shards]).sort(false, shardOrder())]
    }
    // One item per shard; the sample meta gains the shard name and the sample's shard count (for groupKey).
    ch_shards = ch_shard_lists.flatMap { meta, shards ->
        shards.collect { shard -> [meta + [shard: shard.baseName, n_shards: shards.size()], shard] }
    }

    // Not waiting for PROVENANCE: both hash the models through the hash cache under checkpoint_dir, once per run.
    EMBED(ch_shards, esm_model, dnabert_model, classifier, checkpoint_dir)

    // Back to one item per sample, as soon as its last shard is scored, shard predictions in shard order.
    ch_predictions = EMBED.out.predictions
        .map { meta, predictions -> [groupKey(sampleMeta(meta), meta.n_shards), predictions] }
        .groupTuple()
        .map { key, predictions -> [key.getGroupTarget(), predictions.sort(false, shardOrder())] }

    ch_aggregate = ch_predictions
        .join(ch_shard_lists)
        .join(PREPROCESS.out.records)
        .join(ch_reads)

    AGGREGATE(ch_aggregate)

    ch_sample_summaries = AGGREGATE.out.summary.map { meta, summary -> summary }.toSortedList { a, b -> a.name <=> b.name }
    ch_embed_summaries = EMBED.out.summary.map { meta, summary -> summary }.toSortedList { a, b -> a.name <=> b.name }
    // combine() concatenates list items, so each list of files travels wrapped in a one-element list.
    ch_report = ch_sample_summaries
        .map { summaries -> [summaries] }
        .combine(ch_embed_summaries.map { summaries -> [summaries] })
        .map { sample_summaries, embed_summaries -> [[id: 'report'], sample_summaries, embed_summaries] }

    REPORT(ch_report, PROVENANCE.out.provenance, file("${projectDir}/docs/output.md", checkIfExists: true))

    // Publishing: each sample's folder, then the report, as one finished unit each (`virnucpro publish`,
    // docs/output.md "Complete or absent"). Done here rather than by publishDir, which copies file by file; it
    // runs on every run, -resume included, so a deleted or partial folder is restored from the cached tasks.
    // Features exist only with --save_features: each shard then has one, and the join pairs them up.
    ch_embed_outputs = params.save_features
        ? EMBED.out.summary.join(EMBED.out.features)
        : EMBED.out.summary.map { meta, summary -> [meta, summary, null] }
    ch_embed_files = ch_embed_outputs
        .map { meta, summary, features ->
            def files = [["embed/${summary.name}", summary]]
            if (features) {
                files << ["features/${features.name}", features]
            }
            [groupKey(sampleMeta(meta), meta.n_shards), files]
        }
        .groupTuple()
        .map { key, files -> [key.getGroupTarget(), files.sum()] }
    ch_sample_folders = PREPROCESS.out.frames
        .join(PREPROCESS.out.records)
        .join(PREPROCESS.out.chunks)
        .map { meta, nucleotide, protein, records, chunks ->
            [meta, [nucleotide, protein, records, chunks].collect { f -> ["preprocess/${f.name}", f] }]
        }
        .join(ch_embed_files)
        .join(AGGREGATE.out.results)
        .map { meta, preprocessed, embedded, results ->
            [meta, preprocessed + embedded + asList(results).collect { f -> [f.name, f] }]
        }
    // Only once PROVENANCE has passed the models: EMBED does not wait for it, and some of its checks (the chunk
    // length a classifier was trained on) are its alone, so no results of models that fail them are published.
    ch_published = ch_sample_folders.combine(PROVENANCE.out.provenance).map { meta, files, model_check ->
        publishFolder("${params.outdir}/${meta.id}", files)
        meta.id
    }
    // The report goes in last: a report folder never describes a sample folder that failed to appear.
    REPORT.out.report
        .combine(ch_published.count())
        .map { meta, files, n_published -> publishFolder("${params.outdir}/report", asList(files).collect { f -> [f.name, f] }) }

    // Software versions, from every process's `topic: versions` outputs; a `virnucpro --versions` output holds
    // one `tool: version` line per tool. The *_mqc_versions.yml name is what MultiQC reads as software versions.
    ch_versions_yaml = channel.topic('versions')
        .flatMap { process, tool, version -> versionRows(process.tokenize(':').last(), tool, version.toString()) }
        .unique()
        .toList()
        .map { rows -> versionsYaml(rows) }
    // MULTIQC reads the published file itself (its *_mqc_versions.yml name is what MultiQC looks for).
    ch_versions = ch_versions_yaml.map { yaml ->
        writeRunFile("${params.outdir}/pipeline_info/virnucpro_software_mqc_versions.yml", yaml + '\n')
    }

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

def asList(files) {
    return files instanceof List ? files : [files]
}

// `virnucpro publish` (virnucpro/io/publish.py) makes `dest` a folder of exactly these [name, file] pairs, all at
// once; its one-line error (e.g. "No space left on device while writing ...") stops the run.
// When another task fails, Nextflow interrupts the operators still working; a publication under way is let finish
// (it is short, and stopping it halfway gains nothing) and the interrupt passed on afterwards, so the run's only
// error stays the task's own. stderr goes to a file: reading a pipe would be interruptible.
def publishFolder(String dest, List files) {
    def command = ["${projectDir}/bin/virnucpro", 'publish', '--dest', file(dest).toString(), '--mode',
                   params.publish_dir_mode] + files.collect { name, f -> "${name}=${f}" }
    def errors = java.io.File.createTempFile('virnucpro-publish-', '.err')
    def proc = new ProcessBuilder(command.collect { it.toString() })
        .redirectOutput(ProcessBuilder.Redirect.DISCARD)
        .redirectError(errors)
        .start()
    def interrupted = waitThroughInterrupts(proc)
    def lines = errors.readLines().findAll { it.trim() }
    errors.delete()
    if (interrupted) {
        Thread.currentThread().interrupt()
    }
    if (proc.exitValue() != 0) {
        def message = lines ? lines.last().replaceFirst(/^virnucpro: error: /, '') : "${dest}: `virnucpro publish` exited with status ${proc.exitValue()}"
        error("virnucpro: ${message}")
    }
    return dest
}

// Waits for `proc` to end; returns whether the thread was interrupted meanwhile (the strict syntax has no loops).
def waitThroughInterrupts(Process proc) {
    try {
        proc.waitFor()
        return false
    } catch (InterruptedException e) {
        waitThroughInterrupts(proc)
        return true
    }
}

// Written from memory through java.io, whose writes an interrupt does not break: collectFile (and java.nio's
// channels) failed with a spurious "Unexpected error [ClosedByInterruptException]" when a failing task's abort
// interrupted them. Left alone when it already holds `text`, so a -resume finds MULTIQC's input unchanged.
def writeRunFile(String path, String text) {
    def target = new File(file(path).toString())
    if (!(target.isFile() && target.text == text)) {
        target.parentFile.mkdirs()
        target.text = text
    }
    return file(target.path)
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
